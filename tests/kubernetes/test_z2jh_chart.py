"""The Zero to JupyterHub stand-in follows the chart, and pangeohub honours or refuses
what the chart's defaults put on the settings pangeohub decides itself.

The chart's default ``singleuser.profileList: []`` lands on ``KubeSpawner.profile_list``;
before pangeohub treated it as unset, no server could start under the real chart
("No such profile: small"). These tests run the deploy files through the stand-in with
each chart version's defaults (:mod:`tests.kubernetes.z2jh_chart`), as ``helm install``
renders them; the end-to-end hub (test_z2jh.py) starts servers from them.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import jupyterhub_fancy_profiles
import pytest
from traitlets.config import Config

from pangeohub.policy import PangeoPolicy
from pangeohub.spawner.kubernetes import PangeoKubeSpawner

from .conftest import make_user
from .z2jh_chart import (
    CHART_NEWEST,
    CHART_PINNED,
    CHART_VERSIONS,
    apply_chart,
    load_values,
    mappings,
    merge,
    write_config_d,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
# what an admin replaces in the values (the YOUR-... placeholders)
ADMIN_SETS = {"hub": {"config": {"S3ScratchBackend": {"bucket": "pangeo-scratch"}}}}

# Every value key the stand-in models, the trait it lands on and the chart's default at
# CHART_PINNED (4.1.0); CHANGED_IN_NEWEST lists what 4.4.0's defaults change among them.
MODELLED = [
    ("hub.concurrentSpawnLimit", "JupyterHub.concurrent_spawn_limit", 64),
    ("hub.activeServerLimit", "JupyterHub.active_server_limit", None),
    ("hub.baseUrl", "JupyterHub.base_url", "/"),
    ("hub.allowNamedServers", "JupyterHub.allow_named_servers", False),
    ("hub.namedServerLimitPerUser", "JupyterHub.named_server_limit_per_user", None),
    ("hub.authenticatePrometheus", "JupyterHub.authenticate_prometheus", None),
    ("hub.redirectToServer", "JupyterHub.redirect_to_server", None),
    ("hub.shutdownOnLogout", "JupyterHub.shutdown_on_logout", None),
    ("hub.templatePaths", "JupyterHub.template_paths", []),
    ("hub.templateVars", "JupyterHub.template_vars", {}),
    ("singleuser.podNameTemplate", "KubeSpawner.pod_name_template", None),
    ("singleuser.startTimeout", "KubeSpawner.start_timeout", 300),
    ("singleuser.image.pullPolicy", "KubeSpawner.image_pull_policy", None),
    ("singleuser.events", "KubeSpawner.events_enabled", True),
    (
        "singleuser.extraLabels",
        "KubeSpawner.extra_labels",
        {"hub.jupyter.org/network-access-hub": "true"},
    ),
    ("singleuser.extraAnnotations", "KubeSpawner.extra_annotations", {}),
    ("singleuser.uid", "KubeSpawner.uid", 1000),
    ("singleuser.fsGid", "KubeSpawner.fs_gid", 100),
    ("singleuser.serviceAccountName", "KubeSpawner.service_account", None),
    ("singleuser.storage.extraLabels", "KubeSpawner.storage_extra_labels", {}),
    ("singleuser.nodeSelector", "KubeSpawner.node_selector", {}),
    ("singleuser.extraNodeAffinity.required", "KubeSpawner.node_affinity_required", []),
    ("singleuser.extraNodeAffinity.preferred", "KubeSpawner.node_affinity_preferred", []),
    ("singleuser.extraPodAffinity.required", "KubeSpawner.pod_affinity_required", []),
    ("singleuser.extraPodAffinity.preferred", "KubeSpawner.pod_affinity_preferred", []),
    ("singleuser.extraPodAntiAffinity.required", "KubeSpawner.pod_anti_affinity_required", []),
    ("singleuser.extraPodAntiAffinity.preferred", "KubeSpawner.pod_anti_affinity_preferred", []),
    ("singleuser.lifecycleHooks", "KubeSpawner.lifecycle_hooks", {}),
    ("singleuser.initContainers", "KubeSpawner.init_containers", []),
    ("singleuser.extraContainers", "KubeSpawner.extra_containers", []),
    ("singleuser.memory.limit", "KubeSpawner.mem_limit", None),
    ("singleuser.memory.guarantee", "KubeSpawner.mem_guarantee", "1G"),
    ("singleuser.cpu.limit", "KubeSpawner.cpu_limit", None),
    ("singleuser.cpu.guarantee", "KubeSpawner.cpu_guarantee", None),
    ("singleuser.extraResource.limits", "KubeSpawner.extra_resource_limits", {}),
    ("singleuser.extraResource.guarantees", "KubeSpawner.extra_resource_guarantees", {}),
    ("singleuser.extraEnv", "KubeSpawner.environment", {}),
    ("singleuser.profileList", "KubeSpawner.profile_list", []),
    ("singleuser.extraPodConfig", "KubeSpawner.extra_pod_config", {}),
    ("hub.db.type", "JupyterHub.db_url", "sqlite-pvc"),
    ("hub.db.url", "JupyterHub.db_url", None),
    ("hub.db.upgrade", "JupyterHub.upgrade_db", None),
    ("hub.consecutiveFailureLimit", "Spawner.consecutive_failure_limit", 5),
    ("singleuser.image.name", "KubeSpawner.image", "quay.io/jupyterhub/k8s-singleuser-sample"),
    ("singleuser.image.tag", "KubeSpawner.image", "4.1.0"),
    ("singleuser.allowPrivilegeEscalation", "KubeSpawner.allow_privilege_escalation", False),
    ("imagePullSecrets", "KubeSpawner.image_pull_secrets", []),
    ("scheduling.userScheduler.enabled", "KubeSpawner.scheduler_name", True),
    ("scheduling.podPriority.enabled", "KubeSpawner.priority_class_name", False),
    ("scheduling.userPods.nodeAffinity.matchNodePurpose", "KubeSpawner.node_affinity_*", "prefer"),
    (
        "scheduling.userPods.tolerations",
        "KubeSpawner.tolerations",
        [
            {
                "key": "hub.jupyter.org/dedicated",
                "operator": "Equal",
                "value": "user",
                "effect": "NoSchedule",
            },
            {
                "key": "hub.jupyter.org_dedicated",
                "operator": "Equal",
                "value": "user",
                "effect": "NoSchedule",
            },
        ],
    ),
    ("singleuser.extraTolerations", "KubeSpawner.tolerations", []),
    ("singleuser.storage.type", "KubeSpawner.storage_pvc_ensure", "dynamic"),
    ("singleuser.storage.dynamic.pvcNameTemplate", "KubeSpawner.pvc_name_template", None),
    ("singleuser.storage.dynamic.storageClass", "KubeSpawner.storage_class", None),
    (
        "singleuser.storage.dynamic.storageAccessModes",
        "KubeSpawner.storage_access_modes",
        ["ReadWriteOnce"],
    ),
    ("singleuser.storage.capacity", "KubeSpawner.storage_capacity", "10Gi"),
    (
        "singleuser.storage.dynamic.volumeNameTemplate",
        "KubeSpawner.volumes",
        "volume-{user_server}",
    ),
    ("singleuser.storage.homeMountPath", "KubeSpawner.volume_mounts", "/home/jovyan"),
    ("singleuser.extraFiles", "KubeSpawner.volumes", {}),
    ("singleuser.storage.extraVolumes", "KubeSpawner.volumes", []),
    ("singleuser.storage.extraVolumeMounts", "KubeSpawner.volume_mounts", []),
    ("cull.enabled", "JupyterHub.services", True),
    ("hub.services", "JupyterHub.services", {}),
    ("hub.loadRoles", "JupyterHub.load_roles", {}),
    ("singleuser.cmd", "Spawner.cmd", "jupyterhub-singleuser"),
    ("singleuser.defaultUrl", "Spawner.default_url", None),
    ("singleuser.cloudMetadata.blockWithIptables", "KubeSpawner.init_containers", True),
    ("debug.enabled", "JupyterHub.log_level", False),
    (
        "hub.config",
        "<Section>.<trait>",
        {"JupyterHub": {"admin_access": True, "authenticator_class": "dummy"}},
    ),
    ("hub.extraConfig", "(code)", {}),
    ("cull.timeout", "JupyterHub.services (the culler's --timeout)", 3600),
    ("cull.every", "JupyterHub.services (the culler's --cull-every)", 600),
    ("cull.concurrency", "JupyterHub.services (the culler's --concurrency)", 10),
    ("cull.users", "JupyterHub.services (the culler's --cull-users)", False),
    ("cull.adminUsers", "JupyterHub.services (the culler's --cull-admin-users)", True),
    ("cull.removeNamedServers", "JupyterHub.services (the culler's --remove-named-servers)", False),
    ("cull.maxAge", "JupyterHub.services (the culler's --max-age)", 0),
    ("singleuser.storage.dynamic.subPath", "KubeSpawner.volume_mounts", None),
    ("singleuser.storage.static.pvcName", "KubeSpawner.volumes", None),
    ("singleuser.storage.static.subPath", "KubeSpawner.volume_mounts", "{username}"),
    ("singleuser.image.pullSecrets", "KubeSpawner.image_pull_secrets", []),
    ("imagePullSecret.create", "KubeSpawner.image_pull_secrets", False),
    ("imagePullSecret.automaticReferenceInjection", "KubeSpawner.image_pull_secrets", True),
    (
        "singleuser.networkTools.image",
        "KubeSpawner.init_containers",
        {
            "name": "quay.io/jupyterhub/k8s-network-tools",
            "tag": "4.1.0",
            "pullPolicy": None,
            "pullSecrets": [],
        },
    ),
    ("singleuser.networkTools.resources", "KubeSpawner.init_containers", {}),
    ("nameOverride", "KubeSpawner.common_labels", None),
    ("fullnameOverride", "the hub's and proxy's Service names", ""),
]
CHANGED_IN_NEWEST = {
    "singleuser.image.tag": "4.4.0",
    "singleuser.storage.extraVolumes": None,
    "singleuser.storage.extraVolumeMounts": None,
    "singleuser.networkTools.image": {
        "name": "quay.io/jupyterhub/k8s-network-tools",
        "tag": "4.4.0",
        "pullPolicy": None,
        "pullSecrets": [],
    },
}


def test_the_stand_in_models_these_chart_mappings_and_defaults():
    assert mappings(CHART_PINNED) == MODELLED
    newest = [(key, trait, CHANGED_IN_NEWEST.get(key, d)) for key, trait, d in MODELLED]
    assert mappings(CHART_NEWEST) == newest
    assert CHART_VERSIONS == ("4.1.0", "4.4.0")


def test_every_value_the_stand_in_reads_is_in_the_listing():
    """The listing above is the stand-in's whole model: each key its code reads is there."""
    source = (REPO / "tests" / "kubernetes" / "z2jh_chart.py").read_text()
    read = set(re.findall(r'(?<![.\w])get\("([a-zA-Z][a-zA-Z.]*)"', source))
    culler_flags = next(line for line in source.splitlines() if "for flag, key in" in line)
    read |= {f"cull.{key}" for key in re.findall(r'"[a-z-]+", "([a-zA-Z]+)"', culler_flags)}
    chart_metadata = {"Chart", "Release.Name"}  # the chart's own, not values
    listed = {key for key, _, _ in MODELLED}
    # a key read as a whole block (cloudMetadata) is listed by the leaf the chart reads
    blocks = {key for key in read if any(k.startswith(key + ".") for k in listed)}
    assert read - listed - chart_metadata - blocks == set()


def test_the_pinned_chart_version_is_the_one_the_deploy_files_name():
    docs = (REPO / "docs" / "kubernetes.md").read_text()
    found = re.findall(r"jupyterhub/jupyterhub --version (\d+\.\d+\.\d+)", docs)
    assert found and set(found) == {CHART_PINNED}
    assert f"--version {CHART_PINNED}" in (DEPLOY / "values.yaml").read_text()
    assert f"k8s-hub:{CHART_PINNED}" in (DEPLOY / "Dockerfile").read_text()


@pytest.fixture
def chart(tmp_path, monkeypatch):
    """chart(version, extra values, entry_point=True) -> the hub's configuration from
    deploy/values.yaml over the chart's defaults, the image's config.d and extraConfig."""
    for name in ("Z2JH_PUBLIC_PORT", "Z2JH_HUB_PORT", "Z2JH_PROXY_API_PORT"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    config_d = write_config_d(tmp_path / "config.d")  # as deploy/Dockerfile makes it

    def configure(version: str, extra: dict | None = None, entry_point: bool = True) -> Config:
        values = merge(load_values(DEPLOY / "values.yaml", version=version), ADMIN_SETS)
        values = merge(values, extra or {})
        if not entry_point:
            values = merge(values, {"hub": {"extraConfig": None}})
        c = Config()
        apply_chart(c, values, config_d, tmp_path, version)
        return c

    return configure


@pytest.fixture
def kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner reads a kubeconfig when it is made (it talks to no API here)."""
    from kubernetes_asyncio.config import kube_config

    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n"
        "contexts: [{name: x, context: {cluster: x}}]\n"
        "clusters: [{name: x, cluster: {server: 'http://127.0.0.1:9'}}]\n"
    )
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def spawner_for(c: Config, user) -> PangeoKubeSpawner:
    return PangeoKubeSpawner(
        user=user,
        orm_spawner=SimpleNamespace(name="", server=None, display_name="", user_options={}),
        hub=SimpleNamespace(api_url="http://hub:8081/hub/api", base_url="/hub/"),
        config=c,
        api_token="t",
        oauth_client_id="jupyterhub-user-x",
    )


@pytest.mark.parametrize("version", CHART_VERSIONS)
def test_the_charts_empty_profile_list_lands_on_kubespawner(chart, version):
    """The break, reproduced: without pangeohub's entry point the chart's default
    singleuser.profileList is KubeSpawner.profile_list = [] (no profile to start)."""
    c = chart(version, entry_point=False)
    assert c.KubeSpawner.profile_list == []
    assert c.KubeSpawner.mem_guarantee == "1G"
    assert c.KubeSpawner.image == "pangeo/pangeo-notebook:2024.01.15"  # the values


@pytest.mark.parametrize("version", CHART_VERSIONS)
async def test_deploy_files_give_servers_pangeohubs_profiles(chart, kubeconfig, version):
    c = chart(version)
    assert c.KubeSpawner.profile_list == [], "the chart's [] is left as the chart wrote it"
    ada = spawner_for(c, make_user("ada", ["pangeo-data:oceans"]))
    grace = spawner_for(c, make_user("grace", ["pangeo-data:climate"]))
    assert ada.profile_list == ada.kube_profile_list, "and read as unset: pangeohub's list"
    # fancy-profiles' picker (base URL "/"): its template, added by the spawner itself
    assert ada.additional_profile_form_template_paths == jupyterhub_fancy_profiles.TEMPLATE_PATHS
    assert "additional_profile_form_template_paths" not in c.KubeSpawner
    assert [p["slug"] for p in ada.profile_list(ada)] == ["small"]
    assert [p["slug"] for p in grace.profile_list(grace)] == ["small", "large"]
    small = ada.profile_list(ada)[0]["kubespawner_override"]
    assert (small["image"], small["cpu_limit"]) == ("pangeo/pangeo-notebook:2024.01.15", 1.0)


@pytest.mark.parametrize("version", CHART_VERSIONS)
async def test_an_empty_profile_list_set_after_the_entry_point_is_still_unset(
    chart, kubeconfig, version
):
    c = chart(version)
    c.KubeSpawner.profile_list = []  # e.g. an extraConfig entry sorting after zz-pangeohub
    ada = spawner_for(c, make_user("ada"))
    assert [p["slug"] for p in ada.profile_list(ada)] == ["small"]


PROFILE_LIST = [{"display_name": "GPU", "slug": "gpu", "kubespawner_override": {"cpu_limit": 4}}]


@pytest.mark.parametrize("version", CHART_VERSIONS)
def test_a_profile_list_in_the_values_stops_the_hub_naming_pangeohubs_setting(chart, version):
    with pytest.raises(SystemExit) as refused:
        chart(version, {"singleuser": {"profileList": PROFILE_LIST}})
    message = str(refused.value)
    assert message.startswith("pangeohub configuration error: c.KubeSpawner.profile_list")
    assert "singleuser.profileList" in message and "c.PangeoPolicy.profiles" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "extra, words",
    [
        (
            {"hub": {"namedServerLimitPerUser": 2}},
            "named_server_limit_per_user is 2 (hub.namedServerLimitPerUser",
        ),
        (
            {"singleuser": {"image": {"name": "other/image", "tag": "1"}}},
            "c.KubeSpawner.image is 'other/image:1' (singleuser.image",
        ),
        (
            {"singleuser": {"storage": {"capacity": "5Gi"}}},
            "c.KubeSpawner.storage_capacity is '5Gi' (singleuser.storage.capacity",
        ),
        (
            {"singleuser": {"memory": {"limit": "8G"}}, "hub": {"config": {"PangeoPolicy": {}}}},
            None,  # honoured: the values set no default_mem_limit
        ),
    ],
    ids=["namedServerLimitPerUser", "image-differs", "capacity-differs", "memory.limit"],
)
@pytest.mark.parametrize("version", CHART_VERSIONS)
def test_chart_settings_pangeohub_decides_are_honoured_or_refused(chart, extra, words, version):
    if words is None:
        c = chart(version, extra)
        assert PangeoPolicy(config=c).default_mem_limit == "8G"  # the chart's, read
        assert "default_mem_limit" not in c.PangeoPolicy  # not copied there
        return
    with pytest.raises(SystemExit) as refused:
        chart(version, extra)
    assert words in str(refused.value)


@pytest.mark.parametrize("version", CHART_VERSIONS)
def test_chart_defaults_become_pangeohubs_defaults_when_the_values_set_none(chart, version):
    unset = {
        "hub": {"config": {"PangeoPolicy": {"default_image": None, "default_disk_size": None}}},
        "singleuser": {"storage": {"capacity": None}},
    }
    c = chart(version, unset)
    policy = PangeoPolicy(config=c)
    assert policy.default_image == "pangeo/pangeo-notebook:2024.01.15"  # singleuser.image
    assert policy.default_disk_size == "2Gi"  # no capacity in the values: pangeohub's own
    assert "default_image" not in c.PangeoPolicy  # read from c.KubeSpawner, not copied
    (small, large) = policy.all_profiles()
    assert small.image == "pangeo/pangeo-notebook:2024.01.15"
    capacity = {
        "hub": {"config": {"PangeoPolicy": {"default_disk_size": None}}},
        "singleuser": {"storage": {"capacity": "5Gi"}},
    }
    c = chart(version, capacity)
    assert PangeoPolicy(config=c).default_disk_size == "5Gi"  # singleuser.storage.capacity


@pytest.mark.parametrize("version", CHART_VERSIONS)
async def test_the_charts_memory_guarantee_is_at_most_a_profiles_limit(chart, kubeconfig, version):
    c = chart(version)
    spawner = spawner_for(c, make_user("ada"))
    assert spawner.mem_guarantee == 1024**3  # the chart's singleuser.memory.guarantee
    spawner.mem_limit = 512 * 1024**2  # a profile with less memory and no guarantee
    spawner._cap_guarantees()
    assert spawner.mem_guarantee == 512 * 1024**2
