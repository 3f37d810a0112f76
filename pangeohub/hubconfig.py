"""Helpers for the wiring steps that run on the hub's final configuration.

``jupyterhub_config.d`` files register wiring steps in :data:`pangeohub.startup.WIRING`;
they run once every file (the admin's override included) is loaded, on the merged
configuration, so nothing a later file sets is lost. These helpers add a service, grant
a role scopes, or add a spawner hook, keeping whatever is already there (e.g. the
admin's own services and roles).
"""

from __future__ import annotations

import socket

from traitlets.config import LazyConfigValue

# JupyterHub's own scopes for the roles pangeohub extends, for when the config has none.
DEFAULT_ROLE_SCOPES = {
    "user": ["self"],
    "server": ["users:activity!user", "access:servers!server"],
}


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


def register_service(c, service: dict) -> None:
    """Add (or replace, by name) a service in ``c.JupyterHub.services``."""
    services = [s for s in config_list(c, "services") if s.get("name") != service["name"]]
    c.JupyterHub.services = [*services, service]


def grant_scopes(c, role: str, scopes: list[str]) -> None:
    """Add ``scopes`` to ``role`` (``user``, ``server`` or another role) in ``load_roles``."""
    roles = config_list(c, "load_roles")
    for i, existing in enumerate(roles):
        if existing.get("name") == role:
            current = list(existing.get("scopes", []))
            roles[i] = {**existing, "scopes": current + [s for s in scopes if s not in current]}
            break
    else:
        base = list(DEFAULT_ROLE_SCOPES.get(role, []))
        roles.append({"name": role, "scopes": base + [s for s in scopes if s not in base]})
    c.JupyterHub.load_roles = roles


def add_environment_hook(c, hook) -> None:
    """Append ``hook(spawner) -> dict`` to ``c.PangeoSpawnerMixin.environment_hooks``."""
    c.PangeoSpawnerMixin.environment_hooks.append(hook)
