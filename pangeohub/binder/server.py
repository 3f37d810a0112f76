"""The spawner's side of a launch: the server runs in the launched environment.

A launch puts ``{"binder": {"environment": <key>, ...}}`` in the server's options (the
REST API call the launcher makes). Only a finished environment on this hub is accepted;
the repository's files are copied into the server's home as its own account (files the
person already has there are kept), the server starts through the repository's ``start``
script (``exec "$@"``) with the environment's Python, its ``bin`` first on ``PATH``.

Where environments are on, the launched environment is layered on a version of the
profile's environment (:mod:`.builder`): the server runs in that version too (the spawner
keeps it in its state, so it is not removed while the server runs), with the version's
copy of pangeohub's Jupyter configuration and Lab extension, never the hub's. A launched
environment whose version is gone, or one made on the hub's packages while environments
are on, is refused: the launch link builds it again on the current version.
"""

from __future__ import annotations

import os
import subprocess
import sys

from ..environments.servers import settings_of
from ..environments.versions import Version
from ..policy import PolicyError
from ..refusal import refusal
from .builder import BinderBuilder, Environment
from .image import IMAGE_PREFIX
from .launcher import OPTION


def launched_environment(spawner) -> Environment | None:
    """The environment a launched server runs in; None for an ordinary server."""
    launch = (spawner.user_options or {}).get(OPTION)
    if launch is None:
        return None
    key = launch.get("environment") if isinstance(launch, dict) else None
    builder = BinderBuilder(parent=spawner)
    environment = builder.environment(str(key or ""))
    if environment is not None and environment.layer is None:
        if settings_of(spawner).enabled:  # made on the hub's packages: no server's now
            environment = None
    elif environment is not None and builder.layer_gone(environment):
        environment = None
    if environment is None:
        raise refusal(
            PolicyError(
                400,
                "The environment this server was launched with is no longer on the hub (it "
                "was removed to free space, or never finished). Open the launch link again "
                "to rebuild it.",
            )
        )
    return environment


def launched_image(environment: Environment) -> str:
    """The launched environment named as the server's image (``JUPYTER_IMAGE_SPEC``): the
    hub reports it to Dask Gateway, whose workers then run in the same environment."""
    return f"{IMAGE_PREFIX}{environment.path}"


def launched_command(environment: Environment, cmd: list[str]) -> list[str]:
    """The server's command: through ``start`` if the repository has one, on the
    environment's Python when the command is the hub's own Python."""
    if cmd and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable):
        cmd = [environment.python, *cmd[1:]]
    return [environment.start, *cmd] if environment.start else list(cmd)


def _joined(*parts: str) -> str:
    return os.pathsep.join(p for p in parts if p)


def launched_variables(
    environment: Environment, env: dict[str, str], layer: Version | None = None
) -> dict[str, str]:
    """What a launched server's environment adds to ``env``: the venv first on PATH, the
    Jupyter configuration and data (JupyterLab, its extensions, the kernel spec) of what
    it is layered on still found from the layered environment (``layer``, the environment
    version; else the hub's), and where the environment came from."""
    prefix = str(layer.prefix) if layer is not None else sys.prefix
    config, data = os.path.join(prefix, "etc", "jupyter"), os.path.join(prefix, "share", "jupyter")
    variables = {
        "PATH": _joined(environment.bin, env.get("PATH", os.defpath)),
        "JUPYTER_CONFIG_PATH": _joined(env.get("JUPYTER_CONFIG_PATH", ""), config),
        "JUPYTER_PATH": _joined(env.get("JUPYTER_PATH", ""), data),
        "VIRTUAL_ENV": str(environment.path / "env"),
        "BINDER_REPO_URL": environment.meta.get("repository", ""),
        "BINDER_REF": environment.meta.get("ref", ""),
        "BINDER_COMMIT": environment.meta.get("commit", ""),
        "PANGEO_BINDER_ENVIRONMENT": environment.key,
    }
    own_lab = environment.path / "env" / "share" / "jupyter" / "lab"
    if layer is not None and not own_lab.is_dir():  # JupyterLab's assets are the layer's
        variables["JUPYTERLAB_DIR"] = os.path.join(data, "lab")
    return variables


def copy_repository(environment: Environment, home: str, preexec) -> bool:
    """Copy the repository's files into ``home`` as the server's account, keeping what
    is already there (a relaunch never overwrites the person's edits)."""
    done = subprocess.run(
        ["cp", "-r", "--no-clobber", f"{environment.repo}/.", home],
        preexec_fn=preexec,
        check=False,
        capture_output=True,
        timeout=300,
    )
    return done.returncode == 0
