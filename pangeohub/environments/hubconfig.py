"""Wiring environments into the hub (called by :func:`pangeohub.configure`)."""

from __future__ import annotations

import logging

from ..hubconfig import config_list
from ..policy import PangeoPolicy
from .build import Builder
from .page import EnvironmentsPageHandler
from .settings import Environments

ROUTE = r"/environments"


def servers_run_here(c) -> bool:
    """Whether servers run on this machine (pangeohub's local spawner)."""
    spawner = str(c.JupyterHub.get("spawner_class", "pangeo-local"))
    return "kube" not in spawner.lower()


def announce_unbuilt(settings: Environments, names: set[str]) -> None:
    """Say at start-up which environments the profiles need are not built yet (their first
    start builds them, which for the full stack takes longer than a start may)."""
    builder = Builder(settings)
    unbuilt = sorted(name for name in names if builder.current(name) is None)
    if unbuilt:
        logging.getLogger("JupyterHub").warning(
            "pangeohub: environment(s) %s not built yet: the first server start builds each "
            "(the full Pangeo stack takes a few minutes). Build ahead with "
            "`pangeohub-environments build` (make run does).",
            ", ".join(unbuilt),
        )


def wire_environments(c) -> None:
    """The environments page, and a check that every profile's environment is declared."""
    settings = Environments(config=c)
    if not servers_run_here(c):
        return
    if not settings.enabled:
        logging.getLogger("JupyterHub").warning(
            "pangeohub: c.Environments.enabled is off: servers run the hub's own Python "
            "and packages (what people install can reach the hub's)."
        )
        return
    policy = PangeoPolicy(config=c)
    profiles = policy.all_profiles()
    settings.check(profiles)
    announce_unbuilt(settings, {settings.environment_of(p) for p in profiles})
    kept = [h for h in config_list(c, "extra_handlers") if h[1] is not EnvironmentsPageHandler]
    route = (ROUTE, EnvironmentsPageHandler, {"settings": settings, "policy": policy})
    c.JupyterHub.extra_handlers = [*kept, route]
