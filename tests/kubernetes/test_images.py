"""The image recipes under deploy/ build: what each COPY takes exists, what each RUN
installs resolves (and, where this machine has the base image's Python, installs and
imports in a clean environment), and the files placed where the chart reads them are
the ones the chart test loads. How, and what cannot be done here: tests/kubernetes/images.py.

The recipes' real installs run with ``make test-images`` (minutes, and the hub and
gateway images' Pythons, 3.12 and 3.13, are not on this machine: those run on 3.11); the
default suite resolves each recipe's installs for its base image's Python instead.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .images import (
    BASE_IMAGES,
    DEPLOY,
    RECIPES,
    REPO,
    base_image,
    copy_sources,
    ignore_patterns,
    ignored,
    missing_sources,
    run_recipe,
)
from .z2jh_chart import CONFIG_D, hub_image_config_d

UV = Path(sys.executable).with_name("uv")
FULL = os.environ.get("PANGEOHUB_IMAGE_INSTALLS") == "1"  # make test-images


def recipe_id(recipe: Path) -> str:
    return str(recipe.relative_to(DEPLOY))


@pytest.mark.parametrize("recipe", RECIPES, ids=recipe_id)
def test_every_copy_source_is_in_the_build_context(recipe):
    assert copy_sources(recipe), "a recipe that copies nothing from the repository"
    assert missing_sources(recipe) == []
    assert base_image(recipe) in BASE_IMAGES, "record what the recipe relies on in its base"


def test_a_source_the_recipe_misses_or_the_dockerignore_drops_is_found(tmp_path):
    recipe = tmp_path / "Dockerfile"
    recipe.write_text("FROM x\nCOPY services /srv/services\nCOPY setup.cfg \\\n  README.md /tmp/\n")
    assert missing_sources(recipe) == ["services"]
    (tmp_path / "Dockerfile.dockerignore").write_text("**/__pycache__\nREADME.md\n")
    assert missing_sources(recipe) == ["services", "README.md"]
    assert ignored("pangeohub/__pycache__/x.pyc", ignore_patterns(recipe))
    assert not ignored("pangeohub/policy.py", ignore_patterns(recipe))


def test_the_hub_image_places_the_config_d_files_the_chart_test_loads():
    placed = hub_image_config_d()
    assert placed == {"50-pangeohub.py": DEPLOY / "pangeohub_z2jh.py"}
    recipe = (DEPLOY / "Dockerfile").read_text()
    assert f"COPY deploy/pangeohub_z2jh.py {CONFIG_D}50-pangeohub.py" in recipe


def _compile(python: str, requirements: list[str], out: Path) -> subprocess.CompletedProcess:
    """What installing ``requirements`` resolves to on ``python`` (Linux x86_64), from the
    package index: first from uv's cache of it (an earlier run's answers), then online."""
    command = [str(UV), "pip", "compile", "--quiet", "--python-version", python]
    command += ["--python-platform", "x86_64-manylinux_2_28", "-o", str(out), "-"]
    text = "\n".join(requirements) + "\n"
    for offline in (["--offline"], []):
        done = subprocess.run(
            command + offline, input=text, capture_output=True, text=True, timeout=300
        )
        if done.returncode == 0:
            break
    return done


def _pins(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line and line[:1] != "#")


def test_recipes_install_steps_resolve_on_their_base_images_python(tmp_path):
    """The hub recipe's ``pip install /tmp/pangeohub`` on the hub image's Python 3.12, the
    gateway recipe's on 3.13 (this machine has neither), and the user recipe's
    ``pip install --no-deps dask-labextension-gateway`` over the Pangeo image's packages
    on its 3.11 (its requirements must already be there: --no-deps installs none)."""
    user = BASE_IMAGES["pangeo/pangeo-notebook:2024.01.15"]
    jobs = {
        "hub": ("3.12", [str(REPO)]),
        "gateway": ("3.13", [str(REPO)]),
        "user": (user["python"], [*user["packages"], "dask-labextension-gateway"]),
    }
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futures = {
            name: pool.submit(_compile, python, requirements, tmp_path / f"{name}.txt")
            for name, (python, requirements) in jobs.items()
        }
        for name, future in futures.items():
            result = future.result()
            assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
    # the hub image's JupyterHub 5 is upgraded (test_upgrade.py: its database too)
    assert int(_pins(tmp_path / "hub.txt")["jupyterhub"].split(".")[0]) >= 6
    # the user image keeps its packages: nothing of the Pangeo image is replaced
    pins = _pins(tmp_path / "user.txt")
    for package in user["packages"]:
        name, version = package.split("==")
        assert pins[name.lower().replace("_", "-")] == version, package


def test_user_image_recipe_installs_and_imports_in_a_clean_python_3_11(tmp_path):
    """deploy/user-image/Dockerfile's steps for real, in a clean Python 3.11 (the Pangeo
    image's) with the Pangeo image's packages (its lock file's versions)."""
    base = BASE_IMAGES["pangeo/pangeo-notebook:2024.01.15"]
    python = shutil.which(f"python{base['python']}")
    assert python, f"python{base['python']} (the Pangeo image's) is not on this machine"
    prefix = tmp_path / "notebook-env"
    subprocess.run([str(UV), "venv", "--quiet", "-p", python, str(prefix)], check=True)
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "-p", str(prefix / "bin" / "python")]
        + base["packages"],
        check=True,
        timeout=600,
    )
    env = {k: v.format(python_prefix=prefix) for k, v in base["env"].items()}
    image = tmp_path / "image"
    try:
        run_recipe(DEPLOY / "user-image" / "Dockerfile", image, prefix, env)
    except subprocess.CalledProcessError as error:
        raise AssertionError(f"{error.cmd}\n{error.stdout}\n{error.stderr}") from None
    # what the build placed, where Jupyter and Dask read it
    assert json.loads((image / "etc/jupyter/jupyter_server_config.json").read_text())
    assert (image / "etc/dask/pangeohub-gateway.yaml").exists()
    assert (image / "usr/local/share/jupyter/labextensions/pangeohub-lab/package.json").exists()


@pytest.mark.skipif(not FULL, reason="minutes of installs: make test-images")
@pytest.mark.parametrize("recipe", ["Dockerfile", "Dockerfile.gateway"])
def test_hub_and_gateway_recipes_install_and_import_in_a_clean_environment(recipe, tmp_path):
    """The recipe's steps for real, on this machine's Python (3.11, not the base
    image's 3.12 / 3.13), over the base image's recorded packages."""
    path = DEPLOY / recipe
    base = BASE_IMAGES[base_image(path)]
    prefix = tmp_path / "env"
    subprocess.run(
        [str(UV), "venv", "--quiet", "--seed", "-p", "python3.11", str(prefix)], check=True
    )
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "-p", str(prefix / "bin" / "python")]
        + base["packages"],
        check=True,
        timeout=900,
    )
    try:
        run_recipe(path, tmp_path / "image", prefix, {})
    except subprocess.CalledProcessError as error:
        raise AssertionError(f"{error.cmd}\n{error.stdout}\n{error.stderr}") from None
