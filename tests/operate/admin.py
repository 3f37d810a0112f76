"""Run ``pangeohub-admin`` as an admin does, with a test hub's environment."""

from __future__ import annotations

import os
import subprocess

from tests.hubprocess import VENV_BIN, HubProcess


def hub_environment(hub: HubProcess) -> dict[str, str]:
    """The environment the hub's own process gets (what the systemd units set)."""
    return {
        **os.environ,
        "PANGEOHUB_STATE_DIR": str(hub.state_dir),
        "PANGEOHUB_CONFIG": str(hub.workdir / "test_config.py"),
        "PANGEOHUB_PORT": str(hub.port),
        "PANGEOHUB_HUB_PORT": str(hub.hub_port),
        "PANGEOHUB_PROXY_API_PORT": str(hub.proxy_api_port),
        **hub.extra_env,
    }


def admin(hub: HubProcess, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``pangeohub-admin ARGS`` for ``hub``; its output as text."""
    return subprocess.run(
        [str(VENV_BIN / "pangeohub-admin"), *args],
        env=hub_environment(hub),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
