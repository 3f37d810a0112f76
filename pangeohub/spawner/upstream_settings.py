"""Upstream spawner settings pangeohub's spawners cannot honour, refused at start-up.

Both spawners honour JupyterHub's ``options_from_form`` (a callable, or "simple"): its
result passes the policy's checks. "passthrough" keeps every form value a list, which
neither spawner's form can be read from, so the hub refuses to start, in one line saying
what to use instead; likewise a Kubernetes profile option whose choice would set what its
profile sets (limits, guarantees, disk), which the profile's own values would overrule.
"""

from __future__ import annotations

from jupyterhub.spawner import Spawner
from traitlets.config import Config

from ..hubconfig import KUBE_SPAWNERS
from .kube_profiles import resource_overrides

# the configuration sections pangeohub's spawners read, most general first
SPAWNER_SECTIONS = (
    "Spawner",
    "LocalProcessSpawner",
    *KUBE_SPAWNERS,
    "PangeoSpawnerMixin",
    "PangeoLocalSpawner",
)


def runs_pangeohub_spawner(config: Config) -> bool:
    """Whether the hub's spawner is one of pangeohub's (by entry point, path or class)."""
    spawner = config.JupyterHub.get("spawner_class", "")
    if isinstance(spawner, type):
        return any(cls.__module__.startswith("pangeohub.") for cls in spawner.__mro__)
    return "pangeo" in str(spawner).lower()


def check_spawner_settings(config: Config) -> None:
    """Refuse ``options_from_form = "passthrough"`` and resource-setting profile options."""
    if not runs_pangeohub_spawner(config):
        return
    for section in SPAWNER_SECTIONS:
        value = (config.get(section) or {}).get("options_from_form")
        if value == "passthrough" or value is Spawner._passthrough_options_from_form:
            raise ValueError(
                f"c.{section}.options_from_form = 'passthrough' keeps every form value a list, "
                "which pangeohub's spawn form cannot be read from: leave it unset, or use "
                "'simple' or a callable returning {'profile': '<slug>', ...}."
            )
    options = (config.get("PangeoKubeSpawner") or {}).get("profile_options")
    found = resource_overrides(options) if isinstance(options, dict) else []
    if found:
        raise ValueError(
            f"c.PangeoKubeSpawner.profile_options: a choice may set the image, not what its "
            f"profile sets ({', '.join(found[:3])}); make profiles of those sizes instead "
            "(c.PangeoPolicy.profiles)."
        )
