"""The ports this hub chose for the services it starts: one record, never written back.

A managed service whose port the admin left unset (Dask Gateway's two proxies, the
dashboard guard, scratch) gets a free loopback port when the hub starts. The choice is
made once per hub (its state directory, in this process) and kept in :class:`HubPorts`,
not in the configuration: :func:`pangeohub.configure`, which reads the admin's files,
and each server's hooks, which read JupyterHub's own copy of the same configuration,
compute every address from the settings and this record, and so agree; each service
reads its own from the command line or settings file the hub gives it. A service another
package adds (a ``pangeohub.parts`` entry point) gets its port the same way, by name
(:func:`added_service_port`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .hubconfig import free_port
from .state import StateDirectory


@dataclass(frozen=True)
class HubPorts:
    """Loopback ports for the services the hub starts, where the admin set none."""

    gateway: int  # Dask Gateway's HTTP proxy
    gateway_scheduler: int  # its scheduler (TLS) proxy
    dashboard_guard: int
    scratch: int


_chosen: dict[str, HubPorts] = {}


def hub_ports() -> HubPorts:
    """This hub's record, made at its first use and the same after."""
    key = str(StateDirectory.from_env().path)
    ports = _chosen.get(key)
    if ports is None:
        ports = _chosen[key] = HubPorts(free_port(), free_port(), free_port(), free_port())
    return ports


_added: dict[tuple[str, str], int] = {}


def added_service_port(name: str) -> int:
    """A loopback port for the service ``name`` another package's part adds, where the
    admin set none: chosen at its first use in this hub, the same after (as :func:`hub_ports`)."""
    key = (str(StateDirectory.from_env().path), name)
    port = _added.get(key)
    if port is None:
        port = _added[key] = free_port()
    return port
