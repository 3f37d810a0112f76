"""Hub-side wiring of scratch: the managed service, its scopes, where servers reach it."""

from __future__ import annotations

import os
import sys

from ..culling import CullingPolicy
from ..hubconfig import (
    grant_scopes,
    register_service,
    service_settings,
    write_service_settings,
)
from ..state import STATE_DIR_ENV, StateDirectory
from .base import ScratchConfigError
from .hook import ScratchEnvironment
from .settings import SERVICE_CLASSES, ScratchService, scratch_endpoints

SCOPE = "access:services!service={name}"
# The cloud identity of the hub (IRSA / Workload Identity / a key file) reaches the service.
IDENTITY_ENV = ("AWS_", "GOOGLE_")


def wire_scratch(c) -> None:
    """Register the scratch service and grant user and server tokens its scope (servers
    find it at ``c.ScratchEnvironment.service_url``, by default its endpoints' address)."""
    settings = ScratchService(config=c)
    if not settings.enabled:
        return
    try:  # a placeholder or invalid bucket stops the hub here, not the service later
        backend = ScratchEnvironment(config=c).backend()
        backend.check_config()
    except ScratchConfigError as error:
        raise ValueError(f"scratch: {error}") from None
    name = settings.service_name
    endpoints = scratch_endpoints(c)
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
            "url": endpoints.url,
            "display": False,
            "command": [
                sys.executable,
                "-m",
                "pangeohub.scratch.service",
                f"--config={path}",
                f"--ScratchService.url={endpoints.listen}",
                f"--ScratchService.service_name={name}",
            ],
            "environment": env,
        },
    )
    scope = SCOPE.format(name=name)
    grant_scopes(c, "user", [scope])
    grant_scopes(c, "server", [scope])


__all__ = ["ScratchEnvironment", "wire_scratch"]
