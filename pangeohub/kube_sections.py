"""The Kubernetes spawner's configuration sections, read where their values are used.

Zero to JupyterHub turns its ``singleuser.*`` values into ``c.KubeSpawner`` settings.
Four of them are what :class:`~pangeohub.policy.PangeoPolicy` decides per profile:
its ``default_*`` settings read them here as their defaults (on Kubernetes, when the
admin did not set them), so nothing is copied from one section into another.
:mod:`pangeohub.spawner.chart_settings` refuses at start-up the ones that disagree.

This module imports nothing of pangeohub's: the policy, the assembly and the spawner's
checks all read it.
"""

from __future__ import annotations

# The configuration sections of the Kubernetes spawner: upstream's, then pangeohub's.
KUBE_SPAWNERS = ("KubeSpawner", "PangeoKubeSpawner")

# PangeoPolicy setting -> the KubeSpawner setting the chart's value lands on
POLICY_FROM_SPAWNER = {
    "default_image": "image",
    "default_cpu_limit": "cpu_limit",
    "default_mem_limit": "mem_limit",
    "default_disk_size": "storage_capacity",
}


def _section(config, name: str) -> dict:
    """``config[name]`` without adding an empty section (a Config makes one on lookup)."""
    return config.get(name) or {}


def on_kubernetes(config) -> bool:
    """Whether the hub's spawner is KubeSpawner or pangeohub's subclass of it."""
    spawner = _section(config, "JupyterHub").get("spawner_class", "")
    if isinstance(spawner, type):
        from kubespawner import KubeSpawner

        return issubclass(spawner, KubeSpawner)
    return "kube" in str(spawner).lower()


def kube_setting(config, name: str) -> tuple[str | None, object]:
    """The admin's (or the chart's) KubeSpawner ``name`` and the section it is set in, the
    subclass's section first; (None, None) when neither sets it."""
    for section in reversed(KUBE_SPAWNERS):
        values = _section(config, section)
        if name in values:
            return section, values[name]
    return None, None


def chart_default(config, policy_setting: str):
    """The chart's value for ``PangeoPolicy.<policy_setting>`` (one of
    :data:`POLICY_FROM_SPAWNER`): the KubeSpawner setting it lands on, on Kubernetes;
    else None."""
    if not on_kubernetes(config):
        return None
    return kube_setting(config, POLICY_FROM_SPAWNER[policy_setting])[1]
