"""Wiring launch links into the hub (called by :func:`pangeohub.configure`)."""

from __future__ import annotations

import logging

from ..hubconfig import config_list, register_role, register_service
from ..isolation import Isolation
from .builder import BinderBuilder
from .launcher import BinderLauncher, BuildAPIHandler, LaunchPageHandler, launch_handlers

SERVICE = "binder-launcher"  # not "binder": that is BinderHub's own service on Kubernetes


def builds_here(c) -> bool:
    """Whether servers run on this machine (the builder on one machine serves them)."""
    spawner = str(c.JupyterHub.get("spawner_class", "pangeo-local"))
    return "kube" not in spawner.lower()


def wire_binder(c) -> None:
    """Add the launch page and build API to the hub, and the ``binder`` service (a token
    only: no process) whose role may start people's servers through the REST API."""
    launcher = BinderLauncher(config=c)
    if not launcher.enabled:
        return
    if not builds_here(c) and not launcher.binderhub_url:
        logging.getLogger("JupyterHub").warning(
            "pangeohub: launch links are off: on Kubernetes they need BinderHub "
            "(set c.BinderLauncher.binderhub_url and binderhub_image_prefix, or "
            "c.BinderLauncher.enabled = False to silence this)."
        )
        return
    if not launcher.binderhub_url and Isolation(config=c).active:
        BinderBuilder(config=c).check_build_account()  # a ValueError: refused at start-up
    register_service(c, {"name": SERVICE, "api_token": launcher.service_token})
    register_role(
        c,
        {"name": "binder-launcher", "scopes": ["servers", "read:users"], "services": [SERVICE]},
    )
    ours = (LaunchPageHandler, BuildAPIHandler)
    kept = [h for h in config_list(c, "extra_handlers") if h[1] not in ours]
    c.JupyterHub.extra_handlers = kept + launch_handlers(launcher)
