"""Hub-side wiring of scratch: the managed service, its scopes, where servers reach it."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

from ..culling import CullingPolicy
from ..hubconfig import (
    free_port,
    grant_scopes,
    register_service,
    service_settings,
    write_service_settings,
)
from ..state import STATE_DIR_ENV, StateDirectory
from .base import ScratchConfigError
from .hook import ScratchEnvironment
from .settings import SERVICE_CLASSES, ScratchService

SCOPE = "access:services!service={name}"
# The cloud identity of the hub (IRSA / Workload Identity / a key file) reaches the service.
IDENTITY_ENV = ("AWS_", "GOOGLE_")


def hub_side_url(listen: str, hub_connect_url: str = "") -> str:
    """How the hub and the proxy reach a service the hub runs, listening on ``listen``.

    A service listening on every address is reached where the proxy reaches the hub
    (``c.JupyterHub.hub_connect_url``'s host: the hub's Service under Zero to JupyterHub,
    whose proxy runs in a pod of its own), else on loopback."""
    parsed = urlparse(listen)
    host = parsed.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = urlparse(hub_connect_url).hostname or "127.0.0.1"
    return f"{parsed.scheme or 'http'}://{host}:{parsed.port}"


def wire_scratch(c) -> None:
    """Register the scratch service, grant user and server tokens its scope, and tell
    servers where it is (``c.ScratchEnvironment.service_url``, unless the admin set it)."""
    settings = ScratchService(config=c)
    if not settings.enabled:
        return
    try:  # a placeholder or invalid bucket stops the hub here, not the service later
        backend = ScratchEnvironment(config=c).backend()
        backend.check_config()
    except ScratchConfigError as error:
        raise ValueError(f"scratch: {error}") from None
    name = settings.service_name
    if not settings.url:  # chosen once and kept, so configure(c) is idempotent
        c.ScratchService.url = f"http://127.0.0.1:{free_port()}"
    listen = c.ScratchService.url
    url = hub_side_url(listen, c.JupyterHub.get("hub_connect_url", ""))
    base_url = c.JupyterHub.get("base_url", "/").rstrip("/")
    prefix = f"{base_url}/services/{name}/"
    if "service_url" not in c.ScratchEnvironment:
        c.ScratchEnvironment.service_url = f"{url}{prefix}"
    extra = {}
    if "expiry_check_seconds" not in c.ScratchService:
        extra["ScratchService"] = {"expiry_check_seconds": CullingPolicy(config=c).every}
    path = write_service_settings(
        name, service_settings(c, [*SERVICE_CLASSES, type(backend)], extra)
    )
    env = {k: v for k, v in os.environ.items() if k.startswith(IDENTITY_ENV)}
    env[STATE_DIR_ENV] = str(StateDirectory.from_env().path)
    register_service(
        c,
        {
            "name": name,
            "url": url,
            "display": False,
            "command": [
                sys.executable,
                "-m",
                "pangeohub.scratch.service",
                f"--config={path}",
                f"--ScratchService.url={listen}",
                f"--ScratchService.service_name={name}",
            ],
            "environment": env,
        },
    )
    scope = SCOPE.format(name=name)
    grant_scopes(c, "user", [scope])
    grant_scopes(c, "server", [scope])


__all__ = ["ScratchEnvironment", "wire_scratch"]
