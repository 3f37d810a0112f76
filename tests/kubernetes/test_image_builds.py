"""The image recipes under deploy/ built for real with buildah (``make test-image-builds``).

The base images' registries are out of reach here, so each base is a stand-in built from
Debian 12 (debootstrap) with the packages the recipe relies on in the real base, as
recorded in :data:`tests.kubernetes.images.BASE_IMAGES` (on Debian's Python 3.11, where
the chart's hub image has 3.12, the gateway's 3.13 and the Pangeo image 3.11). Each recipe
is then built from its stand-in with ``--build-arg``, exactly as docs/kubernetes.md step 1
builds it (the repository as the context), and the built image is looked into.

Root, buildah and debootstrap are needed; ``make test-image-builds`` installs the latter
two. The Debian tree is kept under ``~/.cache/pangeohub-tests`` between runs. About ten
minutes the first time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from .images import BASE_IMAGES, DEPLOY, REPO, base_image
from .z2jh_chart import CONFIG_D

pytestmark = pytest.mark.skipif(
    os.environ.get("PANGEOHUB_IMAGE_BUILDS") != "1",
    reason="real image builds take minutes: make test-image-builds",
)

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pangeohub-tests"
DEBIAN = "localhost/pangeohub-test-bookworm"
# recipe -> (its build argument naming the base, the stand-in's extra Containerfile lines)
RECIPES = {
    "Dockerfile": ("Z2JH_HUB_IMAGE", ["RUN useradd --uid 1000 --create-home jovyan"]),
    "Dockerfile.gateway": ("GATEWAY_IMAGE", ["RUN useradd --uid 1000 --create-home dask"]),
    "user-image/Dockerfile": (
        "PANGEO_IMAGE",
        [
            "RUN useradd --uid 1000 --create-home jovyan",
            "ENV NB_PYTHON_PREFIX=/srv/conda/envs/notebook NB_USER=jovyan",
        ],
    ),
}


def buildah(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["buildah", *args], check=True, text=True, capture_output=True, **kwargs)


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    """Debian 12 with Python, as an image in buildah's store (made once, kept)."""
    if os.geteuid() != 0 or not (shutil.which("buildah") and shutil.which("debootstrap")):
        pytest.fail("run as root with buildah and debootstrap: make test-image-builds")
    rootfs = CACHE / "bookworm-rootfs"
    if not (rootfs / "usr" / "bin" / "python3").exists():
        shutil.rmtree(rootfs, ignore_errors=True)
        rootfs.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates"]
            + ["bookworm", str(rootfs), "http://deb.debian.org/debian"],
            check=True,
            capture_output=True,
            timeout=1800,
        )
    # the certificates this machine trusts, so builds reach the package index as it does
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/")
    archive = tmp_path_factory.mktemp("debian") / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(rootfs, arcname=".")
    container = buildah("from", "scratch").stdout.strip()
    try:
        buildah("add", container, str(archive), "/")
        buildah("config", "--env", "PIP_CERT=/etc/ssl/certs/ca-certificates.crt", container)
        buildah("commit", "--quiet", container, DEBIAN)
    finally:
        buildah("rm", container)
    yield DEBIAN
    # the images made here (gigabytes): only the Debian tree is kept for the next run
    made = buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout.split()
    ours = [name for name in made if name.startswith("localhost/pangeohub-test-")]
    subprocess.run(["buildah", "rmi", "--force", *ours], capture_output=True)


def stand_in(debian: str, recipe: str, workdir: Path) -> str:
    """The recipe's base image as a stand-in: Debian, a Python with the base's packages."""
    base = BASE_IMAGES[base_image(DEPLOY / recipe)]
    _, extra = RECIPES[recipe]
    prefix = "/srv/conda/envs/notebook" if "user-image" in recipe else "/usr/local/base"
    lines = [
        f"FROM {debian}",
        f"RUN python3 -m venv {prefix} && {prefix}/bin/pip install --no-cache-dir "
        + " ".join(f"'{p}'" for p in base["packages"]),
        f"ENV PATH={prefix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        *extra,
        "USER 1000",
    ]
    containerfile = workdir / "Containerfile"
    containerfile.write_text("\n".join(lines) + "\n")
    tag = f"localhost/pangeohub-test-base-{recipe.replace('/', '-').lower()}"
    build(["-f", str(containerfile), "-t", tag, str(workdir)])
    return tag


def build(args: list[str]) -> None:
    done = subprocess.run(
        ["buildah", "build", "--isolation", "chroot", "--network", "host", *args],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


def look_into(image: str, command: str) -> str:
    container = buildah("from", image).stdout.strip()
    try:
        return buildah("run", "--isolation", "chroot", container, "--", "sh", "-c", command).stdout
    finally:
        buildah("rm", container)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_builds_from_its_base(debian, recipe, tmp_path):
    argument, _ = RECIPES[recipe]
    base = stand_in(debian, recipe, tmp_path)
    image = f"localhost/pangeohub-test-{recipe.replace('/', '-').lower()}"
    # as docs/kubernetes.md step 1 builds it: the repository is the context
    build(["-f", str(DEPLOY / recipe), "--build-arg", f"{argument}={base}", "-t", image, str(REPO)])
    if recipe == "Dockerfile":
        out = look_into(image, f"id -u; jupyterhub --version; cat {CONFIG_D}50-pangeohub.py")
        uid, version, placed = out.split("\n", 2)
        assert uid == "1000" and version.startswith("6.")
        assert placed == (DEPLOY / "pangeohub_z2jh.py").read_text()
    elif recipe == "user-image/Dockerfile":
        out = look_into(image, "ls /etc/jupyter/jupyter_server_config.d /etc/dask")
        assert "pangeohub-activity.json" in out and "pangeohub-gateway.yaml" in out
