"""Run ``pangeohub-admin`` as an admin does, with a test hub's environment."""

from __future__ import annotations

import subprocess

from tests.hubprocess import VENV_BIN, HubProcess


def admin(hub: HubProcess, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``pangeohub-admin ARGS`` for ``hub`` (its environment); its output as text."""
    return subprocess.run(
        [str(VENV_BIN / "pangeohub-admin"), *args],
        env=hub.prepare(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
