"""Wiring environments into the hub (called by :func:`pangeohub.configure`)."""

from __future__ import annotations

import logging

from ..hubconfig import config_list
from ..policy import PangeoPolicy
from .page import EnvironmentsPageHandler
from .settings import Environments

ROUTE = r"/environments"


def servers_run_here(c) -> bool:
    """Whether servers run on this machine (pangeohub's local spawner)."""
    spawner = str(c.JupyterHub.get("spawner_class", "pangeo-local"))
    return "kube" not in spawner.lower()


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
    settings.check(policy.all_profiles())
    kept = [h for h in config_list(c, "extra_handlers") if h[1] is not EnvironmentsPageHandler]
    route = (ROUTE, EnvironmentsPageHandler, {"settings": settings, "policy": policy})
    c.JupyterHub.extra_handlers = [*kept, route]
