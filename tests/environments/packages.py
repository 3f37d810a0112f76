"""Packages the environment tests make themselves: wheels, and the small server environment.

The tests never build the full Pangeo stack (``make check-environment`` does): a server's
environment here holds what a server, its kernel and its Dask workers need, at the hub's
own versions (so uv takes them from its cache after the first run), plus wheels made here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.binder.gitrepo import make_wheel

__all__ = ["make_wheel", "hub_constraints", "small_environment"]

# What a server needs to start, run a kernel, reach scratch through fsspec, start Dask
# Gateway clusters whose workers run in the same environment, and pip install --user.
SERVER_REQUIREMENTS = """\
jupyterhub
jupyter-server
ipykernel
fsspec
dask-gateway
distributed
pip
"""


def hub_constraints(path: Path) -> Path:
    """The hub's own versions as constraints: the test environment's packages are the ones
    already in uv's cache after the first run (no download, seconds to build)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = [line for line in frozen.splitlines() if "==" in line and "pangeohub" not in line]
    path.write_text("\n".join(pins) + "\n")
    return path


def small_environment(directory: Path, wheels: Path) -> str:
    """Hub configuration for a ``pangeo`` environment made of the server's needs and the
    wheels in ``wheels`` (find-links), at the hub's versions."""
    directory.mkdir(parents=True, exist_ok=True)
    requirements = directory / "requirements.txt"
    requirements.write_text(SERVER_REQUIREMENTS)
    constraints = hub_constraints(directory / "constraints.txt")
    return (
        "c.Environments.enabled = True\n"
        f"c.Environments.environments = {{'pangeo': {{'requirements': [{str(requirements)!r}],"
        " 'description': 'A small test environment'}}\n"
        "c.Environments.server_packages = []\n"
        f"c.Environments.constraints = [{str(constraints)!r}]\n"
        f"c.Environments.find_links = [{str(wheels)!r}]\n"
    )
