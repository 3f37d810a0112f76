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

A ``default_*`` the admin did not set is the chart's value, read as its default
(:func:`pangeohub.kube_sections.chart_default`); one the admin set must agree with it (the
hub refuses to start otherwise, naming both). Nothing here writes into the configuration:
the chart's ``[]`` stays in ``c.KubeSpawner.profile_list``, which pangeohub's spawner
reads as unset.
"""

from __future__ import annotations

from traitlets.config import Config

from ..kube_sections import KUBE_SPAWNERS, POLICY_FROM_SPAWNER, kube_setting, on_kubernetes
from ..policy import parse_bytes

# PangeoPolicy setting -> (the chart value it comes from, compare as)
CHART_VALUES = {
    "default_image": ("singleuser.image", str),
    "default_cpu_limit": ("singleuser.cpu.limit", float),
    "default_mem_limit": ("singleuser.memory.limit", parse_bytes),
    "default_disk_size": ("singleuser.storage.capacity", parse_bytes),
}


def check_chart_settings(config: Config) -> None:
    """Refuse the chart's KubeSpawner settings that pangeohub decides itself and cannot
    honour (part of :func:`pangeohub.configure`, run first; nothing off Kubernetes)."""
    if not on_kubernetes(config):
        return
    for section in KUBE_SPAWNERS:
        profile_list = (config.get(section) or {}).get("profile_list")
        if profile_list not in (None, []):  # the chart's [] is unset (the spawner reads so)
            raise ValueError(
                f"c.{section}.profile_list (singleuser.profileList in Zero to JupyterHub's "
                "values) is set, but pangeohub builds the profile list from "
                "c.PangeoPolicy.profiles (with groups): move the profiles there and leave "
                "singleuser.profileList empty."
            )
    limit = (config.get("JupyterHub") or {}).get("named_server_limit_per_user")
    if limit is not None and not callable(limit):
        raise ValueError(
            f"c.JupyterHub.named_server_limit_per_user is {limit!r} (hub.namedServerLimitPerUser "
            "in Zero to JupyterHub's values), but pangeohub applies its own per-group limit: "
            "set c.PangeoPolicy.named_server_limit (and named_server_limit_by_group) instead."
        )
    ours_set = config.get("PangeoPolicy") or {}
    for policy_trait, trait in POLICY_FROM_SPAWNER.items():
        section, value = kube_setting(config, trait)
        if value is None or policy_trait not in ours_set:
            continue  # unset: PangeoPolicy reads the chart's value as its default
        value_key, compare = CHART_VALUES[policy_trait]
        ours = ours_set[policy_trait]
        if compare(ours) != compare(value):
            raise ValueError(
                f"c.{section}.{trait} is {value!r} ({value_key} in Zero to JupyterHub's values) "
                f"but c.PangeoPolicy.{policy_trait} is {ours!r}: profiles take their default "
                f"from c.PangeoPolicy.{policy_trait}; set the two the same, or only one of them."
            )
