"""Helpers for hub configuration that adds services, role scopes and spawner hooks.

Each ``jupyterhub_config.d`` file is loaded with ``load_subconfig`` into a *fresh*
config that is then merged into the hub's, so a file that assigns
``c.JupyterHub.services = [...]`` or ``c.JupyterHub.load_roles = [...]`` replaces what
earlier files set. These helpers keep a process-wide registry and write the merged
lists: what ``c`` already holds (e.g. the admin's own services and roles) plus every
registered service and grant, whatever the load order.
"""

from __future__ import annotations

import socket

from traitlets.config import LazyConfigValue

DEFAULT_ROLE_SCOPES = {
    "user": ["self"],
    "server": ["users:activity!user", "access:servers!server"],
}

_services: dict[str, dict] = {}
_role_scopes: dict[str, list[str]] = {}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for a service the hub starts)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def config_list(c, key: str) -> list[dict]:
    """``c.JupyterHub.<key>`` as a list, resolving ``.append``-style lazy values."""
    value = c.JupyterHub.get(key, [])
    if isinstance(value, LazyConfigValue):
        value = value.get_value([])
    return list(value or [])


def _write(c) -> None:
    services = [s for s in config_list(c, "services") if s.get("name") not in _services]
    c.JupyterHub.services = services + list(_services.values())
    roles = []
    for role in config_list(c, "load_roles"):
        name = role.get("name")
        if name in _role_scopes:
            extra = [s for s in role.get("scopes", []) if s not in _role_scopes[name]]
            _role_scopes[name].extend(extra)
            role = {**role, "scopes": list(_role_scopes[name])}
        roles.append(role)
    known = {role.get("name") for role in roles}
    roles += [{"name": n, "scopes": list(s)} for n, s in _role_scopes.items() if n not in known]
    c.JupyterHub.load_roles = roles


def register_service(c, service: dict) -> None:
    """Add (or replace, by name) a service in ``c.JupyterHub.services``."""
    _services[service["name"]] = service
    _write(c)


def grant_scopes(c, role: str, scopes: list[str]) -> None:
    """Add ``scopes`` to ``role`` (``user``, ``server`` or another role) in ``load_roles``."""
    current = _role_scopes.setdefault(role, list(DEFAULT_ROLE_SCOPES.get(role, [])))
    current.extend(s for s in scopes if s not in current)
    _write(c)


def add_environment_hook(c, hook) -> None:
    """Append ``hook(spawner) -> dict`` to ``c.PangeoSpawnerMixin.environment_hooks``."""
    c.PangeoSpawnerMixin.environment_hooks.append(hook)
