"""Upstream spawner settings pangeohub's spawners cannot honour, refused at start-up.

Both spawners honour JupyterHub's ``options_from_form`` (a callable, or "simple"): its
result passes the policy's checks. "passthrough" keeps every form value a list, which
neither spawner's form can be read from, so the hub refuses to start, in one line saying
what to use instead; likewise a Kubernetes profile option whose choice would set what its
profile sets (limits, guarantees, disk), which the profile's own values would overrule.
"""

from __future__ import annotations

from jupyterhub.spawner import Spawner
from traitlets import TraitError
from traitlets.config import Config

from .kube_profiles import resource_overrides


def hub_spawner_class(config: Config) -> type | None:
    """The hub's spawner class, found as JupyterHub finds ``c.JupyterHub.spawner_class``
    (an entry point name of ``jupyterhub.spawners`` such as "pangeo-local", a
    "module.Class" string, or a class; unset: JupyterHub's default). None if it cannot be
    found: JupyterHub then refuses to start, saying why."""
    from jupyterhub.app import JupyterHub

    trait = JupyterHub.class_traits()["spawner_class"]
    value = config.JupyterHub.get("spawner_class")
    if value is None:
        return trait.default_value
    try:
        return trait.validate(None, value)
    except (TraitError, ImportError, AttributeError):
        return None


def runs_pangeohub_spawner(spawner: type) -> bool:
    """Whether ``spawner`` is one of pangeohub's, or built on one of its classes."""
    return any(cls.__module__.startswith("pangeohub.") for cls in spawner.__mro__)


def check_spawner_settings(config: Config) -> None:
    """Refuse ``options_from_form = "passthrough"`` and resource-setting profile options in
    any section the hub's spawner reads (those of the classes it is made of, e.g.
    ``Spawner``, ``KubeSpawner``, ``PangeoKubeSpawner``, or an added spawner's own)."""
    spawner = hub_spawner_class(config)
    if spawner is None or not runs_pangeohub_spawner(spawner):
        return
    sections = spawner.section_names()  # most general first, as traitlets loads them
    for section in sections:
        value = (config.get(section) or {}).get("options_from_form")
        if value == "passthrough" or value is Spawner._passthrough_options_from_form:
            raise ValueError(
                f"c.{section}.options_from_form = 'passthrough' keeps every form value a list, "
                "which pangeohub's spawn form cannot be read from: leave it unset, or use "
                "'simple' or a callable returning {'profile': '<slug>', ...}."
            )
    for section in sections:
        options = (config.get(section) or {}).get("profile_options")
        found = resource_overrides(options) if isinstance(options, dict) else []
        if found:
            raise ValueError(
                f"c.{section}.profile_options: a choice may set the image, not what its "
                f"profile sets ({', '.join(found[:3])}); make profiles of those sizes instead "
                "(c.PangeoPolicy.profiles)."
            )
