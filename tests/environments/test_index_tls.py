"""Builds reach packages the way the machine does: its trust store, its pip settings.

The index is HTTPS on loopback with a certificate authority of its own, which only the
machine's trust store knows (as behind a campus proxy): in a private mount namespace
``/etc/ssl/certs/ca-certificates.crt`` is the system's bundle plus that authority, and no
``SSL_CERT_*`` variable is set.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from traitlets.config import Config

from pangeohub.environments import Environments
from pangeohub.environments.build import Builder, BuildFailed

from .https_index import HTTPSIndex
from .packages import make_wheel

SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not SYSTEM_BUNDLE.is_file() or not shutil.which("unshare"),
    reason="the machine's trust store is changed in a private mount namespace (root)",
)


@pytest.fixture(scope="module")
def campus(tmp_path_factory):
    """The index, and uv seeing a trust store that knows its authority."""
    base = tmp_path_factory.mktemp("campus")
    make_wheel(base / "wheels", "pangeotest_campus", "1.0", "C = 1\n")
    with HTTPSIndex(base / "wheels", base / "certs") as index:
        bundle = base / "ca-certificates.crt"
        bundle.write_bytes(SYSTEM_BUNDLE.read_bytes() + b"\n" + index.ca.read_bytes())
        from uv import find_uv_bin

        machine_uv = base / "uv"
        machine_uv.write_text(
            "#!/bin/sh\n"
            f'exec unshare --mount sh -c \'mount --bind "$0" {SYSTEM_BUNDLE} && exec "$@"\' '
            f'{bundle} {find_uv_bin()} "$@"\n'
        )
        machine_uv.chmod(0o755)
        yield index, machine_uv, base


def build(campus, tmp_path, monkeypatch, system_certs: bool, pip_conf: str = "", **settings):
    index, machine_uv, base = campus
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "PIP_FIND_LINKS", "UV_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    config_file = tmp_path / "pip.conf"
    config_file.write_text(pip_conf)
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config_file) if pip_conf else os.devnull)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(base / "no-system-config"))
    monkeypatch.setenv("HOME", str(tmp_path))  # no user-level pip or uv files
    (tmp_path / "req.txt").write_text("pangeotest-campus\n")
    c = Config()
    c.Environments.root = str(tmp_path / "root")
    c.Environments.added_dir = str(tmp_path / "added")
    c.Environments.environments = {"campus": {"requirements": [str(tmp_path / "req.txt")]}}
    c.Environments.server_packages = []
    c.Environments.uv = str(machine_uv)
    c.Environments.cache_dir = str(tmp_path / "cache")
    c.Environments.system_certs = system_certs
    for key, value in settings.items():
        setattr(c.Environments, key, value)
    return asyncio.run(Builder(Environments(config=c)).ensure("campus"))


def installed(version) -> str:
    done = subprocess.run(
        [version.python, "-c", "import pangeotest_campus; print(pangeotest_campus.C)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_a_build_trusts_the_machines_certificate_authority(campus, tmp_path, monkeypatch):
    index = campus[0]
    version = build(campus, tmp_path, monkeypatch, system_certs=True, index_url=index.url)
    assert version.package_version("pangeotest-campus") == "1.0" and installed(version) == "1"
    assert "/simple/pangeotest-campus/" in index.requests


def test_uvs_bundled_roots_alone_refuse_the_campus_index(campus, tmp_path, monkeypatch):
    # What the issue saw: "invalid peer certificate: UnknownIssuer".
    with pytest.raises(BuildFailed) as failed:
        build(campus, tmp_path, monkeypatch, system_certs=False, index_url=campus[0].url)
    assert "UnknownIssuer" in failed.value.detail


def test_a_build_follows_pips_configuration(campus, tmp_path, monkeypatch):
    # pip.conf names the index and the authority (as pip's users set it up); nothing else.
    index = campus[0]
    pip_conf = f"[global]\nindex-url = {index.url}\ncert = {index.ca}\n"
    version = build(campus, tmp_path, monkeypatch, system_certs=False, pip_conf=pip_conf)
    assert installed(version) == "1"


@pytest.mark.parametrize("system_certs", [True, False])
def test_a_binder_build_goes_through_the_campus_index_with_the_system_certs(
    campus, tmp_path, monkeypatch, system_certs
):
    """A launch's build reaches the index the machine's pip names (``PIP_INDEX_URL``, read
    by the hub: a build starts with a clean environment), verified with the machine's trust store
    (c.Environments.system_certs); with uv's own roots alone it is refused, by name."""
    from pangeohub.binder.builder import BinderBuilder
    from pangeohub.binder.spec import parse_spec
    from tests.binder.gitrepo import ServedRepos

    index, machine_uv, base = campus
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "PIP_FIND_LINKS", "UV_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # (the machine's own name a cert)
    monkeypatch.setenv("PIP_INDEX_URL", index.url)
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(base / "no-system-config"))
    monkeypatch.setenv("HOME", str(tmp_path))
    served = ServedRepos(tmp_path / "served")
    try:
        served.publish("campus", "notebooks", {"requirements.txt": "pangeotest-campus\n"})
        c = Config()
        c.Isolation.enabled = False
        c.BinderBuilder.env_root = str(tmp_path / "binder")
        c.BinderBuilder.uv = str(machine_uv)
        c.Environments.system_certs = system_certs
        builder = BinderBuilder(config=c)
        repo = parse_spec("gh", "campus/notebooks/main", served.url)

        async def launch():
            commit = await builder.resolve(repo, "campus")
            return [e async for e in builder.build(repo, commit, "campus")]

        events = asyncio.run(launch())
    finally:
        served.stop()
    if not system_certs:
        assert events[-1]["phase"] == "failed", events[-1]
        assert "UnknownIssuer" in "\n".join(events[-1]["log"])
        return
    assert events[-1]["phase"] == "built", events[-1].get("log")
    launched = builder.environment(events[-1]["environment"])
    assert installed(launched) == "1"
    assert "/simple/pangeotest-campus/" in index.requests
