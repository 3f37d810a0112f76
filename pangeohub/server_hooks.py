"""Each server's hooks from pangeohub's enabled parts, built from its spawner's settings.

pangeohub's spawners run them at every start and stop, after the admin's own
(``environment_hooks``, ``post_stop_hook``); :func:`pangeohub.configure` binds none.
"""

from __future__ import annotations

from .gateway.hub import GatewayService
from .lab.environment import lab_environment
from .parts import hub_part
from .scratch.hook import scratch_environment
from .scratch.settings import ScratchService


def server_environment_hooks(spawner) -> list:
    """The enabled parts' ``hook(spawner) -> dict``, built from ``spawner``'s settings."""
    hooks = []
    if hub_part(ScratchService, spawner).enabled:
        hooks.append(scratch_environment)
    gateway = hub_part(GatewayService, spawner)
    if gateway.enabled:
        hooks.append(gateway.environment)
    return [*hooks, lab_environment]


def server_stop_hooks(spawner) -> list:
    """The enabled parts' ``hook(spawner)`` run after a server stops."""
    gateway = hub_part(GatewayService, spawner)
    return [gateway.stop_server_clusters] if gateway.enabled else []
