"""Helpers for wiring pangeohub's parts into the hub's final configuration.

:func:`pangeohub.configure` runs once every file (the admin's included) is loaded, on the
merged configuration. These helpers add a service, grant a role scopes, and write a
service's settings file, keeping whatever is already there (the admin's own services and
roles, the admin's settings).
"""

from __future__ import annotations

import json
import random
import socket
from pathlib import Path

from traitlets import TraitType
from traitlets.config import Config, Configurable, LazyConfigValue

from .state import StateDirectory, write_private

# JupyterHub's own scopes for the roles pangeohub extends, for when the config has none.
DEFAULT_ROLE_SCOPES = {
    "user": ["self"],
    "server": ["users:activity!user", "access:servers!server"],
}


def _ephemeral_ports() -> range:
    """The ports the kernel hands to outgoing connections and to ``bind(0)``."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return range(low, high + 1)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for a service the hub starts).

    The service binds it seconds later, so the port is taken from below the kernel's
    ephemeral range, where no outgoing connection (the hub's, a server's) can take it in
    the meantime as it can a ``bind(0)`` port; and it is left in TIME_WAIT for a minute
    (see :func:`_reserve`), so no other call, in this process or another, picks it too."""
    ephemeral = _ephemeral_ports()
    candidates = range(20000, ephemeral.start) if ephemeral.start > 21000 else range(0)
    for port in random.sample(candidates, min(50, len(candidates))):
        try:
            return _reserve(host, port)
        except OSError:
            continue
    return _reserve(host, 0)


def _reserve(host: str, port: int) -> int:
    """Bind ``port`` (0: any), then leave it in TIME_WAIT by a connection closed from its side.

    Until TIME_WAIT ends, a ``bind`` without ``SO_REUSEADDR`` (this function's, the
    kernel's choice for ``bind(0)``) fails on the port, while the servers the hub starts
    (tornado, aiohttp, Go, node and PostgreSQL all set ``SO_REUSEADDR``) bind it at once."""
    with socket.socket() as listener:
        listener.bind((host, port))
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.listen(1)
        address = listener.getsockname()[:2]
        with socket.create_connection(address, timeout=5):
            accepted, _ = listener.accept()
            accepted.close()  # the listening side closes first: its end waits
    return address[1]


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


def register_role(c, role: dict) -> None:
    """Add (or replace, by name) a role in ``c.JupyterHub.load_roles``."""
    roles = [r for r in config_list(c, "load_roles") if r.get("name") != role["name"]]
    c.JupyterHub.load_roles = [*roles, role]


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


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _declared(cls: type) -> list[type]:
    """The classes ``cls`` says it configures (its ``classes``: an application's, or a
    part's that makes configurables of its own, e.g. a backend's)."""
    declared = getattr(cls, "classes", None)
    if isinstance(declared, TraitType):  # e.g. dask-gateway-server's ``classes = List([...])``
        declared = declared.default()
    return [k for k in declared or () if isinstance(k, type)]


def _hub_sections() -> set[str]:
    """The names of JupyterHub's own classes: ``c.Proxy`` or ``c.Authenticator`` is the
    hub's, even where a service has a class of the same name."""
    import jupyterhub.app  # noqa: F401  (every class the hub configures, imported)

    return {k.__name__ for k in _subclasses(Configurable) if k.__module__.startswith("jupyterhub.")}


def class_family(classes) -> list[type]:
    """What a service configures, from its own ``classes``: those, every subclass of one
    of them imported so far (a backend an admin added), what each declares it configures
    (its ``classes``), and their configurable parents, traitlets' own bases left out."""
    seen: set[type] = set()
    todo = list(classes)
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.add(cls)
            todo += [*_subclasses(cls), *_declared(cls)]
    family = {
        k
        for cls in seen
        for k in cls.__mro__
        if isinstance(k, type)
        and issubclass(k, Configurable)
        and not k.__module__.startswith("traitlets")
    }
    return sorted(family, key=lambda k: (k.__name__, k.__module__))


def _resolved(classes: list[type], values: Config) -> dict:
    """A section's values with ``.append``-style lazy values applied to the trait default."""
    resolved = {}
    for key, value in values.items():
        if isinstance(value, LazyConfigValue):
            trait = None
            for cls in classes:
                trait = cls.class_traits().get(key) or trait
            default = trait.default() if trait is not None else None
            value = value.get_value(default if default is not None else [])
        resolved[key] = value
    return resolved


def service_settings(c: Config, classes, extra: dict | None = None) -> dict:
    """The sections of ``c`` a service started by the hub reads: those of the classes it
    configures (:func:`class_family` of its ``classes``) but the hub's own
    (:func:`_hub_sections`), plus ``extra``."""
    hub = _hub_sections()
    by_name: dict[str, list[type]] = {}
    for cls in class_family(classes):
        if cls.__name__ not in hub:
            by_name.setdefault(cls.__name__, []).append(cls)
    settings = {name: _resolved(by_name[name], c[name]) for name in sorted(by_name) if name in c}
    for section, values in (extra or {}).items():
        settings.setdefault(section, {}).update(values)
    return settings


def write_service_settings(name: str, settings: dict) -> Path:
    """Write a service's settings (0600) where the service reads them:
    ``<state dir>/services/<name>.json``. A value JSON cannot hold is refused by name."""
    for section, values in settings.items():
        for key, value in values.items():
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"c.{section}.{key} cannot be passed to the {name} service (it is a "
                    f"{type(value).__name__}); use plain values (strings, numbers, lists, dicts)."
                ) from None
    text = json.dumps(settings, indent=1, sort_keys=True) + "\n"
    directory = StateDirectory.from_env().subdir("services")
    return write_private(directory / f"{name}.json", text)
