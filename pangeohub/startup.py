"""What runs once the whole configuration is loaded (the admin's override included).

``jupyterhub_config.py`` ends with :func:`finalize_configuration`: first the wiring that
depends on final settings (the culler's command and role), then the checks. A
configuration pangeohub cannot honour stops the hub at start-up with a message that
says what to change, instead of failing later in front of a user.
"""

from __future__ import annotations

from collections.abc import Callable

from traitlets.config import Config

from .culling import CullingPolicy, destructive_culling
from .hubconfig import config_list
from .policy import PangeoPolicy


class ConfigurationError(SystemExit):
    """The hub cannot start with this configuration; the message says what to change."""


def check_profiles(config: Config) -> None:
    """Every profile is well formed and within the admin's bounds."""
    PangeoPolicy(config=config).all_profiles()


def check_culling_keeps_disks(config: Config) -> None:
    """No culler may remove servers or users: that would delete their disks."""
    reason = destructive_culling(config)
    if reason:
        raise ValueError(reason)


def wire_culling(config: Config) -> None:
    """Register the idle culler with its final settings."""
    CullingPolicy(config=config).apply(config)


def wire_scratch_expiry_schedule(config: Config, service_name: str = "scratch") -> None:
    """Expire scratch data on the culler's schedule (c.CullingPolicy.every)."""
    every = CullingPolicy(config=config).every
    services = config_list(config, "services")
    for service in services:
        command = service.get("command")
        if service.get("name") != service_name or not command:
            continue
        flag = "--ScratchService.expiry_check_seconds="
        service["command"] = [a for a in command if not a.startswith(flag)] + [f"{flag}{every}"]
    config.JupyterHub.services = services


# Steps jupyterhub_config.d files add (scratch, Dask Gateway); pangeohub's own run after them.
WIRING: list[Callable[[Config], None]] = []
FINAL_WIRING: list[Callable[[Config], None]] = [wire_culling, wire_scratch_expiry_schedule]
CHECKS: list[Callable[[Config], None]] = [check_profiles, check_culling_keeps_disks]


def finalize_configuration(config: Config) -> None:
    """Wire what depends on final settings, then run every check."""
    for step in [*WIRING, *FINAL_WIRING, *CHECKS]:
        try:
            step(config)
        except ValueError as error:
            raise ConfigurationError(f"pangeohub configuration error: {error}") from None
