"""The hub as systemd services: unit files an admin can read, one command to install.

Two units, each restarted on failure and started at boot:

- ``pangeohub.service``: JupyterHub with pangeohub's configuration. It starts
  configurable-http-proxy on loopback and the managed services (scratch, Dask Gateway,
  the dashboards guard, the culler), and starts again any of them that dies (the proxy
  within ``c.ConfigurableHTTPProxy.check_running_interval``, its routes restored);
- ``pangeohub-https.service`` (with ``c.HTTPS.domain``): caddy in front of the proxy
  (``pangeohub-admin https``).

The pid files JupyterHub keeps in the state directory survive a machine restart, and
JupyterHub kills the process a proxy pid file names: after a restart that number may be
another program's. The hub unit removes them before each start (none can be current:
systemd runs one hub at a time).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..state import write_atomic
from .https import HTTPS
from .hub import Hub

ENVIRONMENT = (
    "PANGEOHUB_CONFIG",
    "PANGEOHUB_IP",
    "PANGEOHUB_PORT",
    "PANGEOHUB_HUB_PORT",
    "PANGEOHUB_PROXY_API_PORT",
)
HUB, HTTPS_UNIT = "pangeohub.service", "pangeohub-https.service"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _unit(description: str, after: list[str], service: list[str], wants: list[str] = ()) -> str:
    lines = [
        "# Written by `pangeohub-admin install-service` (docs/operate/service.md): run it",
        "# again rather than editing this file.",
        "[Unit]",
        f"Description={description}",
        f"After={' '.join(after)}",
    ]
    if wants:
        lines.append(f"Wants={' '.join(wants)}")
    lines.append("StartLimitIntervalSec=0")  # keep trying (a database not up yet at boot)
    lines += ["", "[Service]", *service, "", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def units(hub: Hub, bin_dir: Path = Path(sys.executable).parent) -> dict[str, str]:
    """The unit files' text by name, for this hub (its state directory, its admin file,
    the environment pangeohub-admin runs in)."""
    bundle = hub.config_file.parent
    path = os.pathsep.join([str(bin_dir), str(bundle / "node_modules" / ".bin"), SYSTEM_PATH])
    environment = [f"Environment=PANGEOHUB_STATE_DIR={hub.state.path}"]
    environment += [
        f"Environment={name}={os.environ[name]}" for name in ENVIRONMENT if name in os.environ
    ]
    environment.append(f"Environment=PATH={path}")
    common = [
        *environment,
        f"WorkingDirectory={hub.state.path}",
        "Restart=on-failure",
        "RestartSec=5",
    ]
    admin = bin_dir / "pangeohub-admin"
    network = ["network-online.target"]
    c = hub.config
    pid_files = [
        c.JupyterHub.get("pid_file", str(hub.state.path / "jupyterhub.pid")),
        c.ConfigurableHTTPProxy.get("pid_file", str(hub.state.path / "proxy.pid")),
    ]
    result = {
        HUB: _unit(
            "pangeohub: JupyterHub, its proxy and its services (scratch, Dask Gateway, culler)",
            network,
            [
                f"ExecStartPre=/bin/rm -f {' '.join(pid_files)}",
                f"ExecStart={bin_dir / 'jupyterhub'} -f {hub.config_file}",
                *common,
                # The hub stops its servers and services itself; what is left is then killed.
                "KillMode=mixed",
                "TimeoutStopSec=120",
            ],
            wants=network,
        ),
    }
    if hub.part(HTTPS).enabled:
        result[HTTPS_UNIT] = _unit(
            "pangeohub: HTTPS (caddy in front of the hub's proxy; ACME certificates renewed)",
            [*network, HUB],
            [f"ExecStart={admin} https", *common],
            wants=network,
        )
    return result


def verify(paths: list[Path]) -> str | None:
    """``systemd-analyze verify`` on the unit files: None if clean, else what it says."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return None
    result = subprocess.run(
        [analyze, "verify", *map(str, paths)], capture_output=True, text=True, check=False
    )
    return None if result.returncode == 0 else (result.stderr or result.stdout).strip()


def systemd_running() -> bool:
    """Whether systemd is this machine's init (it is on a VM; not in a container)."""
    return Path("/run/systemd/system").is_dir()


def install(hub: Hub, units_dir: Path, enable: bool = True) -> list[Path]:
    """Write the units into ``units_dir`` and check them; with systemd running, enable
    and start them. The written paths."""
    units_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in units(hub).items():
        written.append(write_atomic(units_dir / name, text, 0o644))
    problem = verify(written)
    if problem:
        raise RuntimeError(f"systemd-analyze verify refused the units:\n{problem}")
    if enable and systemd_running():
        subprocess.run(["systemctl", "daemon-reload"], check=True)
        names = [path.name for path in written]
        subprocess.run(["systemctl", "enable", "--now", *names], check=True)
    return written
