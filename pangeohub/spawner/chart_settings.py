"""KubeSpawner settings pangeohub sets itself, as Zero to JupyterHub hands them over.

The chart turns its ``singleuser.*`` values into ``c.KubeSpawner`` settings, each with a
default of its own, before the admin's ``hub.config`` and pangeohub's entry point run.
Some of them land on what pangeohub decides per server from ``c.PangeoPolicy``. Each is
honoured or refused at start-up, never dropped in silence (docs/kubernetes.md,
"Chart settings pangeohub decides itself"):

- ``singleuser.profileList`` (``profile_list``): ``[]``, the chart's default, is unset;
  any other list is refused, naming ``c.PangeoPolicy.profiles``;
- ``singleuser.image`` (``image``), ``cpu.limit`` (``cpu_limit``), ``memory.limit``
  (``mem_limit``), ``storage.capacity`` (``storage_capacity``): the defaults of
  profiles, ``PangeoPolicy.default_image``, ``default_cpu_limit``, ``default_mem_limit``,
  ``default_disk_size``;
- ``singleuser.cpu.guarantee``, ``memory.guarantee`` (``cpu_guarantee``,
  ``mem_guarantee``): the guarantee of profiles that set none, at most their limit
  (:meth:`~pangeohub.spawner.kubernetes.PangeoKubeSpawner._cap_guarantees`);
- ``hub.namedServerLimitPerUser`` (``JupyterHub.named_server_limit_per_user``, a
  number): refused, naming ``c.PangeoPolicy.named_server_limit``.

A ``default_*`` the admin did not set takes the chart's value; one the admin set must
agree with it (the hub refuses to start otherwise, naming both).
"""

from __future__ import annotations

from traitlets.config import Config

from ..hubconfig import KUBE_SPAWNERS
from ..policy import parse_bytes

# KubeSpawner setting -> (PangeoPolicy setting, the chart value it comes from, compare as)
POLICY_DEFAULTS = {
    "image": ("default_image", "singleuser.image", str),
    "cpu_limit": ("default_cpu_limit", "singleuser.cpu.limit", float),
    "mem_limit": ("default_mem_limit", "singleuser.memory.limit", parse_bytes),
    "storage_capacity": ("default_disk_size", "singleuser.storage.capacity", parse_bytes),
}


def on_kubernetes(config: Config) -> bool:
    """Whether the hub's spawner is KubeSpawner or pangeohub's subclass of it."""
    spawner = config.JupyterHub.get("spawner_class", "")
    if isinstance(spawner, type):
        from kubespawner import KubeSpawner

        return issubclass(spawner, KubeSpawner)
    return "kube" in str(spawner).lower()


def _kube_setting(config: Config, name: str):
    """The admin's (or the chart's) KubeSpawner ``name``, the subclass's section first."""
    for section in reversed(KUBE_SPAWNERS):
        if name in config[section]:
            return section, config[section][name]
    return None, None


def adopt_chart_settings(config: Config) -> None:
    """Take over, or refuse, the chart's KubeSpawner settings that pangeohub decides
    itself (part of :func:`pangeohub.configure`; nothing off Kubernetes)."""
    if not on_kubernetes(config):
        return
    for section in KUBE_SPAWNERS:
        profile_list = config[section].get("profile_list")
        if isinstance(profile_list, list) and not profile_list:
            del config[section]["profile_list"]  # the chart's default: unset
        elif profile_list is not None:
            raise ValueError(
                f"c.{section}.profile_list (singleuser.profileList in Zero to JupyterHub's "
                "values) is set, but pangeohub builds the profile list from "
                "c.PangeoPolicy.profiles (with groups): move the profiles there and leave "
                "singleuser.profileList empty."
            )
    limit = config.JupyterHub.get("named_server_limit_per_user")
    if limit is not None and not callable(limit):
        raise ValueError(
            f"c.JupyterHub.named_server_limit_per_user is {limit!r} (hub.namedServerLimitPerUser "
            "in Zero to JupyterHub's values), but pangeohub applies its own per-group limit: "
            "set c.PangeoPolicy.named_server_limit (and named_server_limit_by_group) instead."
        )
    for trait, (policy_trait, value_key, compare) in POLICY_DEFAULTS.items():
        section, value = _kube_setting(config, trait)
        if value is None:
            continue
        if policy_trait not in config.PangeoPolicy:
            setattr(config.PangeoPolicy, policy_trait, value)
            continue
        ours = config.PangeoPolicy[policy_trait]
        if compare(ours) != compare(value):
            raise ValueError(
                f"c.{section}.{trait} is {value!r} ({value_key} in Zero to JupyterHub's values) "
                f"but c.PangeoPolicy.{policy_trait} is {ours!r}: profiles take their default "
                f"from c.PangeoPolicy.{policy_trait}; set the two the same, or only one of them."
            )
