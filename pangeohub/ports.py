"""Start-up check (one machine): the hub's ports are free, or the hub says which is not.

With a port already taken (another hub, another program), configurable-http-proxy fails
to listen and exits, and JupyterHub then ends with "api_request to proxy failed: 403"
and a traceback (it met the other program's proxy on the API port) or a bind error on
the hub's port: nothing names the port or the setting. pangeohub checks each port the
hub or its proxy is about to listen on before JupyterHub starts anything, and refuses
the start naming the port, what it is for and the setting that chooses it.

A proxy left running by an earlier run of the same hub (its pid file names a live
process) is JupyterHub's to stop and replace, so its two ports are not checked then.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from traitlets.config import Config

from .lab.machine import runs_on_one_machine

CHP = ("", "configurable-http-proxy", "ConfigurableHTTPProxy")


def in_use(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` already (a port left in TIME_WAIT
    is free: the hub's servers bind with SO_REUSEADDR)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


def _alive(pid_file: str) -> bool:
    try:
        pid = int(Path(pid_file).read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def hub_ports(c: Config) -> list[tuple[str, int, str]]:
    """(host, port, what it is and the setting) for each port the hub will listen on."""
    hub = c.JupyterHub
    ports = [
        (
            hub.get("hub_ip", "127.0.0.1") or "0.0.0.0",
            int(hub.get("hub_port", 8081)),
            "the hub's own API (c.JupyterHub.hub_port; PANGEOHUB_HUB_PORT with make run)",
        )
    ]
    proxy = c.ConfigurableHTTPProxy
    proxy_class = str(hub.get("proxy_class", ""))
    if proxy_class.rsplit(".", 1)[-1] not in CHP or not proxy.get("should_start", True):
        return ports
    if proxy.get("pid_file") and _alive(proxy.pid_file):
        return ports  # an earlier run's proxy: JupyterHub stops it
    public = urlparse(hub.get("bind_url", "")) if hub.get("bind_url") else None
    public_host = public.hostname if public else hub.get("ip", "")
    public_port = (public.port if public else None) or int(hub.get("port", 8000))
    api = urlparse(proxy.get("api_url", "") or "http://127.0.0.1:8001")
    ports += [
        (
            public_host or "0.0.0.0",
            public_port,
            "the hub's public address (c.JupyterHub.port; PANGEOHUB_PORT with make run)",
        ),
        (
            api.hostname or "127.0.0.1",
            api.port or 8001,
            "the proxy's API (c.ConfigurableHTTPProxy.api_url; PANGEOHUB_PROXY_API_PORT "
            "with make run)",
        ),
    ]
    return ports


def check_ports_free(c: Config) -> None:
    """Refuse to start (one machine) when a port the hub needs is taken, naming it."""
    if not runs_on_one_machine(c):
        return
    for host, port, what in hub_ports(c):
        if in_use(host, port):
            raise ValueError(
                f"port {port} on {host}, for {what}, is already in use by another "
                "program (another hub?). Stop that program, or choose another port."
            )
