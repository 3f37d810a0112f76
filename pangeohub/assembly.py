"""pangeohub's one entry point: ``pangeohub.configure(c)``.

Every ``jupyterhub_config.py`` that runs pangeohub ends with it: the bundle's own, and on
Zero to JupyterHub an ``hub.extraConfig`` entry that sorts last. It reads the merged
configuration only, registers each enabled part's services and roles (keeping whatever
the admin set), then runs every start-up check. Calling it twice changes nothing.

Parts (each on by default, off with one setting):

==============  ============================  =============================================
part            switch                        what it adds
==============  ============================  =============================================
scratch         ``c.ScratchService.enabled``  the credential service, its scope
Dask Gateway    ``c.GatewayService.enabled``  the gateway service (or an external one)
dashboards      ``c.DashboardGuard.enabled``  sign-in and ownership before a Dask dashboard
culling         ``c.CullingPolicy.enabled``   jupyterhub-idle-culler, stop-only
launch links    ``c.BinderLauncher.enabled``  /hub/v2/<provider>/<spec>, its build API
profile picker  ``c.ProfilePicker.fancy``     jupyterhub-fancy-profiles' spawn page
home page       ``c.HomePage.enabled``        each server's profile, disk and state
environments    ``c.Environments.enabled``    servers in their profile's environment (one machine)
named servers   (always)                      the limit and name rule (:mod:`pangeohub.servers`)
shutdown order  (always)                      servers and their clusters before services
==============  ============================  =============================================

Another package adds a part of its own (a service the hub starts, its roles) under the
``pangeohub.parts`` entry point group: a callable taking the hub's configuration, as
pangeohub's own parts are, run after them (by entry point name) and before the checks,
so the checks see what it added.

Per-server hooks are not bound here: pangeohub's spawners build them for each server
from the same settings (:mod:`pangeohub.server_hooks`).
"""

from __future__ import annotations

from importlib.metadata import entry_points

from traitlets.config import Config

from .binder.hubconfig import wire_binder
from .culling import CullingPolicy, destructive_culling, wire_culling
from .environments.hubconfig import wire_environments
from .gateway.hub import GatewayService, wire_gateway
from .hub_handlers import wire_quiet_handlers
from .isolation import announce_isolation
from .kube_sections import KUBE_SPAWNERS, on_kubernetes
from .lab.home import wire_home
from .lab.launch_link import wire_launch_link
from .lab.machine import announce_fit
from .lab.picker import wire_picker
from .local_auth import wire_local_accounts
from .operate.https import check_https
from .policy import PangeoPolicy
from .ports import check_ports_free
from .refusal import wire_quiet_refusals
from .scratch.hubconfig import wire_scratch
from .scratch.settings import ScratchService
from .servers import wire_named_servers
from .shutdown import wire_shutdown
from .spawner.chart_settings import check_chart_settings
from .spawner.upstream_settings import check_spawner_settings


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


def check_claim_per_server(config: Config) -> None:
    """On Kubernetes each server has its own claim, so deleting one deletes only its disk."""
    for section in KUBE_SPAWNERS:
        template = (config.get(section) or {}).get("pvc_name_template", "claim-{user_server}")
        if "{user_server}" not in template:
            raise ValueError(
                f"{section}.pvc_name_template is {template!r}; it must contain {{user_server}} "
                "so that each server has its own disk "
                "(singleuser.storage.dynamic.pvcNameTemplate in Zero to JupyterHub's values)."
            )


def announce_isolation_here(config: Config) -> None:
    """One machine: say what is isolated. On Kubernetes every server is a pod of its
    own with the profile's limits, and a line about this machine's accounts is wrong."""
    if not on_kubernetes(config):
        announce_isolation(config)


# The parts, in order, and the checks; constants, not registries. The chart's values are
# checked first, so that a refusal of one names it before anything is wired.
PARTS = (
    check_chart_settings,
    wire_named_servers,
    wire_scratch,
    wire_gateway,
    wire_culling,
    wire_binder,
    wire_launch_link,
    wire_picker,
    wire_home,
    wire_environments,
    wire_shutdown,
    wire_quiet_handlers,
    wire_quiet_refusals,
    wire_local_accounts,
)
# Other packages' parts: callables taking the hub's configuration, as PARTS are.
ADDED_PARTS = "pangeohub.parts"

CHECKS = (
    check_profiles,
    check_culling_keeps_disks,
    check_claim_per_server,
    check_spawner_settings,
    check_ports_free,
    check_https,
    announce_isolation_here,
    announce_fit,
)


def added_parts() -> list:
    """The parts installed packages add (the ``pangeohub.parts`` entry points), by name."""
    parts = []
    for entry in sorted(entry_points(group=ADDED_PARTS), key=lambda entry: entry.name):
        try:
            part = entry.load()
        except (ImportError, AttributeError) as error:
            raise ValueError(
                f"the part {entry.name!r} ({entry.value}) cannot be loaded "
                f"({type(error).__name__}: {error}); install its dependencies or uninstall "
                "the package that adds it."
            ) from None
        if not callable(part):
            raise ValueError(
                f"the part {entry.name!r} ({entry.value}) is not a function of the hub's "
                "configuration; fix or uninstall the package that adds it."
            )
        parts.append(part)
    return parts


def configure(c: Config) -> Config:
    """Wire pangeohub's enabled parts, then those installed packages add, into the hub's
    final configuration ``c``; then refuse at start-up what cannot be honoured
    (:class:`ConfigurationError`)."""
    try:
        for step in (*PARTS, *added_parts(), *CHECKS):
            step(c)
    except ValueError as error:
        raise ConfigurationError(f"pangeohub configuration error: {error}") from None
    return c


__all__ = ["configure", "ConfigurationError", "CullingPolicy", "GatewayService", "ScratchService"]
