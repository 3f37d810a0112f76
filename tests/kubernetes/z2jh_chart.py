"""A test stand-in for the hub configuration file of the Zero to JupyterHub chart.

The chart's hub image runs its own ``jupyterhub_config.py``, which reads the Helm values
(the chart's ``values.yaml`` defaults coalesced with the admin's files, mounted from a
Secret) and turns them into traitlets configuration. This module does the same, in the
same order, for the chart versions in :data:`CHART_VERSIONS` (the one docs/kubernetes.md
pins and the newest), from a table of the chart's default values recorded here
(:data:`CHART_DEFAULTS`, only the keys the chart's hub configuration reads). Written from
reading the chart's ``jupyterhub/values.yaml`` and ``jupyterhub/files/hub/jupyterhub_config.py``
at those tags; nothing of the chart is copied into the repository.

The order, as the chart's file does it: the spawner (``kubespawner.KubeSpawner``), the
database, ``hub.*`` onto ``c.JupyterHub``, ``singleuser.*`` onto ``c.KubeSpawner`` (among
them ``singleuser.profileList`` -> ``profile_list``, default ``[]``), scheduling, storage
and ``extraFiles`` volumes, the services and roles lists (reset, then the chart's culler,
``hub.services``, ``hub.loadRoles``), ``singleuser.cmd``/``defaultUrl``, the cloud metadata
block, the chart's generated secrets, ``hub.config`` (``c[Section].update``), the hub
image's ``jupyterhub_config.d/*.py``, then ``hub.extraConfig`` in sorted key order, in one
namespace where ``c`` is the configuration and ``get_config(key)`` reads the values.
:func:`mappings` lists every value key modelled, the trait it lands on and its default.

What stands in for the cluster (the only differences from the chart): the proxy runs on
loopback, started by the hub, instead of in its own pod; the hub's own address and its
Service's come from ``Z2JH_*`` variables instead of Kubernetes Service variables; the
chart's generated secrets (cookie secret, crypt key) are generated once into the working
directory; the hub finds the (fake) API server through ``$KUBECONFIG`` where the chart's
uses the pod's service account; tornado's default HTTP client is kept (the chart's image
has pycurl for ``CurlAsyncHTTPClient``). Network policies and ``hub.service.extraPorts``
are Kubernetes objects the fake API does not enforce; ``test_z2jh_values.py`` and
``test_least_privilege.py`` check them.

Use it as the hub's configuration file, with the test's settings in the environment::

    Z2JH_CHART_VERSION=4.1.0 Z2JH_VALUES=deploy/values.yaml:overlay.yaml Z2JH_CONFIG_D=<dir> \\
    Z2JH_PUBLIC_PORT=.. Z2JH_HUB_PORT=.. Z2JH_PROXY_API_PORT=.. POD_NAMESPACE=.. \\
    jupyterhub -f tests/kubernetes/z2jh_hub_config.py
"""

from __future__ import annotations

import copy
import os
import re
import secrets
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]

CHART_PINNED = "4.1.0"  # docs/kubernetes.md, deploy/values.yaml, deploy/Dockerfile
CHART_NEWEST = "4.4.0"
CHART_VERSIONS = (CHART_PINNED, CHART_NEWEST)
RELEASE = "pangeo"  # docs/kubernetes.md: helm upgrade --install pangeo ...

# What the chart's hub image (quay.io/jupyterhub/k8s-hub:<version>) ships, from its
# images/hub/Dockerfile and requirements.txt at each tag: the base deploy/Dockerfile builds on.
HUB_IMAGE = {
    "4.1.0": {
        "python": "3.12",
        "jupyterhub": "5.2.1",
        "jupyterhub-kubespawner": "7.0.0",
        "oauthenticator": "17.3.0",
        "jupyterhub-idle-culler": "1.4.0",
        "sqlalchemy": "2.0.37",
        "alembic": "1.14.0",
    },
    "4.4.0": {
        "python": "3.12",
        "jupyterhub": "5.5.0",
        "jupyterhub-kubespawner": "7.0.0",
        "oauthenticator": "17.4.0",
        "jupyterhub-idle-culler": "1.4.0",
        "sqlalchemy": "2.0.50",
        "alembic": "1.18.4",
    },
}

_USER_TOLERATIONS = [
    {"key": key, "operator": "Equal", "value": "user", "effect": "NoSchedule"}
    for key in ("hub.jupyter.org/dedicated", "hub.jupyter.org_dedicated")
]


def _network_policy(ingress_ports=(), **allow) -> dict:
    """A ``networkPolicy`` block of the chart's values: every egressAllowRules flag on
    unless ``allow`` says otherwise."""
    flags = ("cloudMetadataServer", "dnsPortsCloudMetadataServer", "dnsPortsKubeSystemNamespace")
    flags += ("dnsPortsPrivateIPs", "nonPrivateIPs", "privateIPs")
    return {
        "enabled": True,
        "ingress": [],
        "egress": [],
        "egressAllowRules": {flag: allow.get(flag, True) for flag in flags},
        "interNamespaceAccessLabels": "ignore",
        "allowedIngressPorts": list(ingress_ports),
    }


def _defaults_4_1_0() -> dict:
    """The chart's values.yaml at 4.1.0, for the keys its hub configuration reads
    (and the network policy keys test_least_privilege.py compares with)."""
    return {
        "fullnameOverride": "",
        "nameOverride": None,
        "imagePullSecret": {"create": False, "automaticReferenceInjection": True},
        "imagePullSecrets": [],
        "hub": {
            "config": {"JupyterHub": {"admin_access": True, "authenticator_class": "dummy"}},
            "baseUrl": "/",
            "concurrentSpawnLimit": 64,
            "consecutiveFailureLimit": 5,
            "activeServerLimit": None,
            "db": {"type": "sqlite-pvc", "upgrade": None, "url": None, "password": None},
            "extraConfig": {},
            "loadRoles": {},
            "services": {},
            "allowNamedServers": False,
            "namedServerLimitPerUser": None,
            "authenticatePrometheus": None,
            "redirectToServer": None,
            "shutdownOnLogout": None,
            "templatePaths": [],
            "templateVars": {},
            "networkPolicy": _network_policy(),
        },
        "proxy": {"chp": {"networkPolicy": _network_policy(ingress_ports=["http", "https"])}},
        "singleuser": {
            "podNameTemplate": None,
            "extraTolerations": [],
            "nodeSelector": {},
            "extraNodeAffinity": {"required": [], "preferred": []},
            "extraPodAffinity": {"required": [], "preferred": []},
            "extraPodAntiAffinity": {"required": [], "preferred": []},
            "networkTools": {
                "image": {
                    "name": "quay.io/jupyterhub/k8s-network-tools",
                    "tag": "4.1.0",
                    "pullPolicy": None,
                    "pullSecrets": [],
                },
                "resources": {},
            },
            "cloudMetadata": {"blockWithIptables": True, "ip": "169.254.169.254"},
            "networkPolicy": _network_policy(cloudMetadataServer=False, privateIPs=False),
            "events": True,
            "extraAnnotations": {},
            "extraLabels": {"hub.jupyter.org/network-access-hub": "true"},
            "extraFiles": {},
            "extraEnv": {},
            "lifecycleHooks": {},
            "initContainers": [],
            "extraContainers": [],
            "allowPrivilegeEscalation": False,
            "uid": 1000,
            "fsGid": 100,
            "serviceAccountName": None,
            "storage": {
                "type": "dynamic",
                "extraLabels": {},
                "extraVolumes": [],
                "extraVolumeMounts": [],
                "static": {"pvcName": None, "subPath": "{username}"},
                "capacity": "10Gi",
                "homeMountPath": "/home/jovyan",
                "dynamic": {
                    "storageClass": None,
                    "pvcNameTemplate": None,
                    "volumeNameTemplate": "volume-{user_server}",
                    "storageAccessModes": ["ReadWriteOnce"],
                    "subPath": None,
                },
            },
            "image": {
                "name": "quay.io/jupyterhub/k8s-singleuser-sample",
                "tag": "4.1.0",
                "pullPolicy": None,
                "pullSecrets": [],
            },
            "startTimeout": 300,
            "cpu": {"limit": None, "guarantee": None},
            "memory": {"limit": None, "guarantee": "1G"},
            "extraResource": {"limits": {}, "guarantees": {}},
            "cmd": "jupyterhub-singleuser",
            "defaultUrl": None,
            "extraPodConfig": {},
            "profileList": [],
        },
        "scheduling": {
            "userScheduler": {"enabled": True},
            "podPriority": {"enabled": False},
            "userPods": {
                "tolerations": _USER_TOLERATIONS,
                "nodeAffinity": {"matchNodePurpose": "prefer"},
            },
        },
        "cull": {
            "enabled": True,
            "users": False,
            "adminUsers": True,
            "removeNamedServers": False,
            "timeout": 3600,
            "every": 600,
            "concurrency": 10,
            "maxAge": 0,
        },
        "debug": {"enabled": False},
    }


def _defaults_4_4_0() -> dict:
    """4.1.0's, with what 4.4.0 changed among those keys (its values.yaml diff)."""
    values = _defaults_4_1_0()
    values["singleuser"]["storage"]["extraVolumes"] = None
    values["singleuser"]["storage"]["extraVolumeMounts"] = None
    values["singleuser"]["image"]["tag"] = "4.4.0"
    values["singleuser"]["networkTools"]["image"]["tag"] = "4.4.0"
    return values


CHART_DEFAULTS: dict[str, dict] = {"4.1.0": _defaults_4_1_0(), "4.4.0": _defaults_4_4_0()}
# How each version's hub configuration builds KubeSpawner's volumes: 4.1.0 a list,
# 4.3.0 on a dict by name (so extraVolumes can be merged).
VOLUMES_BY_NAME = {"4.1.0": False, "4.4.0": True}


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


# value key (under hub.) -> c.JupyterHub trait, set when the value is not null
JUPYTERHUB_KEYS = [
    (f"hub.{_camel(t)}", t)
    for t in (
        "concurrent_spawn_limit",
        "active_server_limit",
        "base_url",
        "allow_named_servers",
        "named_server_limit_per_user",
        "authenticate_prometheus",
        "redirect_to_server",
        "shutdown_on_logout",
        "template_paths",
        "template_vars",
    )
]
# value key (under singleuser.) -> c.KubeSpawner trait, set when the value is not null
KUBESPAWNER_KEYS = [
    (f"singleuser.{key or _camel(trait)}", trait)
    for trait, key in (
        ("pod_name_template", None),
        ("start_timeout", None),
        ("image_pull_policy", "image.pullPolicy"),
        ("events_enabled", "events"),
        ("extra_labels", None),
        ("extra_annotations", None),
        ("uid", None),
        ("fs_gid", None),
        ("service_account", "serviceAccountName"),
        ("storage_extra_labels", "storage.extraLabels"),
        ("node_selector", None),
        ("node_affinity_required", "extraNodeAffinity.required"),
        ("node_affinity_preferred", "extraNodeAffinity.preferred"),
        ("pod_affinity_required", "extraPodAffinity.required"),
        ("pod_affinity_preferred", "extraPodAffinity.preferred"),
        ("pod_anti_affinity_required", "extraPodAntiAffinity.required"),
        ("pod_anti_affinity_preferred", "extraPodAntiAffinity.preferred"),
        ("lifecycle_hooks", None),
        ("init_containers", None),
        ("extra_containers", None),
        ("mem_limit", "memory.limit"),
        ("mem_guarantee", "memory.guarantee"),
        ("cpu_limit", "cpu.limit"),
        ("cpu_guarantee", "cpu.guarantee"),
        ("extra_resource_limits", "extraResource.limits"),
        ("extra_resource_guarantees", "extraResource.guarantees"),
        ("environment", "extraEnv"),
        ("profile_list", None),
        ("extra_pod_config", None),
    )
]
# value keys the chart's file turns into settings by its own rules (not "set if not null")
OTHER_KEYS = [
    ("hub.db.type", "JupyterHub.db_url"),
    ("hub.db.url", "JupyterHub.db_url"),
    ("hub.db.upgrade", "JupyterHub.upgrade_db"),
    ("hub.consecutiveFailureLimit", "Spawner.consecutive_failure_limit"),
    ("singleuser.image.name", "KubeSpawner.image"),
    ("singleuser.image.tag", "KubeSpawner.image"),
    ("singleuser.allowPrivilegeEscalation", "KubeSpawner.allow_privilege_escalation"),
    ("imagePullSecrets", "KubeSpawner.image_pull_secrets"),
    ("scheduling.userScheduler.enabled", "KubeSpawner.scheduler_name"),
    ("scheduling.podPriority.enabled", "KubeSpawner.priority_class_name"),
    ("scheduling.userPods.nodeAffinity.matchNodePurpose", "KubeSpawner.node_affinity_*"),
    ("scheduling.userPods.tolerations", "KubeSpawner.tolerations"),
    ("singleuser.extraTolerations", "KubeSpawner.tolerations"),
    ("singleuser.storage.type", "KubeSpawner.storage_pvc_ensure"),
    ("singleuser.storage.dynamic.pvcNameTemplate", "KubeSpawner.pvc_name_template"),
    ("singleuser.storage.dynamic.storageClass", "KubeSpawner.storage_class"),
    ("singleuser.storage.dynamic.storageAccessModes", "KubeSpawner.storage_access_modes"),
    ("singleuser.storage.capacity", "KubeSpawner.storage_capacity"),
    ("singleuser.storage.dynamic.volumeNameTemplate", "KubeSpawner.volumes"),
    ("singleuser.storage.homeMountPath", "KubeSpawner.volume_mounts"),
    ("singleuser.extraFiles", "KubeSpawner.volumes"),
    ("singleuser.storage.extraVolumes", "KubeSpawner.volumes"),
    ("singleuser.storage.extraVolumeMounts", "KubeSpawner.volume_mounts"),
    ("cull.enabled", "JupyterHub.services"),
    ("hub.services", "JupyterHub.services"),
    ("hub.loadRoles", "JupyterHub.load_roles"),
    ("singleuser.cmd", "Spawner.cmd"),
    ("singleuser.defaultUrl", "Spawner.default_url"),
    ("singleuser.cloudMetadata.blockWithIptables", "KubeSpawner.init_containers"),
    ("debug.enabled", "JupyterHub.log_level"),
    ("hub.config", "<Section>.<trait>"),
    ("hub.extraConfig", "(code)"),
    ("cull.timeout", "JupyterHub.services (the culler's --timeout)"),
    ("cull.every", "JupyterHub.services (the culler's --cull-every)"),
    ("cull.concurrency", "JupyterHub.services (the culler's --concurrency)"),
    ("cull.users", "JupyterHub.services (the culler's --cull-users)"),
    ("cull.adminUsers", "JupyterHub.services (the culler's --cull-admin-users)"),
    ("cull.removeNamedServers", "JupyterHub.services (the culler's --remove-named-servers)"),
    ("cull.maxAge", "JupyterHub.services (the culler's --max-age)"),
    ("singleuser.storage.dynamic.subPath", "KubeSpawner.volume_mounts"),
    ("singleuser.storage.static.pvcName", "KubeSpawner.volumes"),
    ("singleuser.storage.static.subPath", "KubeSpawner.volume_mounts"),
    ("singleuser.image.pullSecrets", "KubeSpawner.image_pull_secrets"),
    ("imagePullSecret.create", "KubeSpawner.image_pull_secrets"),
    ("imagePullSecret.automaticReferenceInjection", "KubeSpawner.image_pull_secrets"),
    ("singleuser.networkTools.image", "KubeSpawner.init_containers"),
    ("singleuser.networkTools.resources", "KubeSpawner.init_containers"),
    ("nameOverride", "KubeSpawner.common_labels"),
    ("fullnameOverride", "the hub's and proxy's Service names"),
]


def mappings(version: str) -> list[tuple[str, str, object]]:
    """(value key, trait, the chart's default) for every key modelled for ``version``."""
    defaults = CHART_DEFAULTS[version]
    rows = [(key, f"JupyterHub.{trait}", lookup(defaults, key)) for key, trait in JUPYTERHUB_KEYS]
    rows += [
        (key, f"KubeSpawner.{trait}", lookup(defaults, key)) for key, trait in KUBESPAWNER_KEYS
    ]
    rows += [(key, trait, lookup(defaults, key)) for key, trait in OTHER_KEYS]
    return rows


def merge(base: Mapping, override: Mapping) -> dict:
    """``override`` over ``base`` as Helm coalesces values (``null`` removes a key)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_values(*paths: str | os.PathLike, version: str = CHART_PINNED) -> dict:
    """The chart's defaults for ``version``, then each values file in order
    (``helm install --version <version> -f a -f b``), with the chart's ``Chart`` and
    ``Release`` entries (its hub Secret adds them)."""
    values = CHART_DEFAULTS[version]
    for path in paths:
        values = merge(values, yaml.safe_load(Path(path).read_text()) or {})
    values["Chart"] = {"Name": "jupyterhub", "Version": version}
    values["Release"] = {"Name": RELEASE, "Namespace": os.environ.get("POD_NAMESPACE", RELEASE)}
    return values


def lookup(values: dict, key: str, default=None):
    """``values["a"]["b"]`` for ``"a.b"``, like the chart's ``z2jh.get_config``."""
    value = values
    for level in key.split("."):
        if not isinstance(value, dict) or level not in value:
            return default
        value = value[level]
    return value


def _secret(workdir: Path, name: str) -> str:
    """A chart-generated secret: made once, kept (as the chart keeps its Secret)."""
    path = workdir / f"chart-secret-{name}"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text()


def _full_name(values: dict, name: str) -> str:
    """The chart's resource names (its ``jupyterhub.<name>.fullname`` helpers)."""
    prefix = values.get("fullnameOverride")
    return f"{prefix}-{name}" if prefix else name


def apply_hub(c, values: dict, workdir: Path) -> None:
    """The chart's settings of ``c.JupyterHub`` (and where the hub, proxy and database are)."""
    get = lambda key, default=None: copy.deepcopy(lookup(values, key, default))  # noqa: E731
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    # Stand-in: the chart's proxy is a pod of its own (should_start False); here the hub
    # starts it on loopback.
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['Z2JH_PROXY_API_PORT']}"
    c.ConfigurableHTTPProxy.command = [str(REPO / "node_modules/.bin/configurable-http-proxy")]
    c.ConfigurableHTTPProxy.pid_file = str(workdir / "proxy.pid")
    c.JupyterHub.pid_file = str(workdir / "jupyterhub.pid")
    c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['Z2JH_PUBLIC_PORT']}"
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.last_activity_interval = 60
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}

    db_type = get("hub.db.type")
    if db_type == "sqlite-pvc":
        c.JupyterHub.db_url = f"sqlite:///{workdir / 'jupyterhub.sqlite'}"
    elif db_type == "sqlite-memory":
        c.JupyterHub.db_url = "sqlite://"
    elif get("hub.db.url") is not None:
        c.JupyterHub.db_url = get("hub.db.url")
    # the hub's command line: --upgrade-db when hub.db.upgrade says so, or by default
    # (hub.db.upgrade null) with sqlite-pvc
    upgrade = lookup(values, "hub.db.upgrade")
    if upgrade or (upgrade is None and db_type == "sqlite-pvc"):
        c.JupyterHub.upgrade_db = True

    for key, trait in JUPYTERHUB_KEYS:
        if get(key) is not None:
            setattr(c.JupyterHub, trait, get(key))

    # The chart: the hub listens on all addresses of its pod (http://:8081) and the proxy
    # and services reach it through its Service (http://hub:8081). Stand-in: the hub's
    # address on loopback ($Z2JH_HUB_IP: "" for all, in a network namespace of its own),
    # and the Service's name or address from $Z2JH_HUB_SERVICE_HOST.
    port = os.environ["Z2JH_HUB_PORT"]
    service_host = os.environ.get("Z2JH_HUB_SERVICE_HOST", "127.0.0.1")
    c.JupyterHub.hub_bind_url = f"http://{os.environ.get('Z2JH_HUB_IP', '127.0.0.1')}:{port}"
    c.JupyterHub.hub_connect_url = f"http://{service_host}:{port}"


def apply_singleuser(c, values: dict) -> None:
    """KubeSpawner from ``singleuser.*``, ``scheduling.*`` and the image pull secrets."""
    get = lambda key, default=None: copy.deepcopy(lookup(values, key, default))  # noqa: E731
    chart = get("Chart") or {}
    labels = c.KubeSpawner.common_labels = {}
    labels["app.kubernetes.io/name"] = labels["app"] = get("nameOverride") or chart.get("Name")
    release = get("Release.Name")
    if release:
        labels["app.kubernetes.io/instance"] = labels["release"] = release
    if chart.get("Name") and chart.get("Version"):
        version = chart["Version"].replace("+", "_")
        labels["helm.sh/chart"] = labels["chart"] = f"{chart['Name']}-{version}"
    labels["app.kubernetes.io/managed-by"] = "kubespawner"
    c.KubeSpawner.namespace = os.environ.get("POD_NAMESPACE", "default")
    if get("hub.consecutiveFailureLimit") is not None:
        c.Spawner.consecutive_failure_limit = get("hub.consecutiveFailureLimit")

    for key, trait in KUBESPAWNER_KEYS:
        if get(key) is not None:
            setattr(c.KubeSpawner, trait, get(key))
    image = get("singleuser.image.name")
    if image:
        tag = get("singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image
    c.KubeSpawner.allow_privilege_escalation = get("singleuser.allowPrivilegeEscalation")

    pull_secrets = []
    if get("imagePullSecret.automaticReferenceInjection") and get("imagePullSecret.create"):
        pull_secrets.append(_full_name(values, "image-pull-secret"))
    pull_secrets += get("imagePullSecrets") or []
    pull_secrets += get("singleuser.image.pullSecrets") or []
    if pull_secrets:
        c.KubeSpawner.image_pull_secrets = pull_secrets

    if get("scheduling.userScheduler.enabled"):
        c.KubeSpawner.scheduler_name = _full_name(values, "user-scheduler")
    if get("scheduling.podPriority.enabled"):
        c.KubeSpawner.priority_class_name = _full_name(values, "priority")
    purpose = get("scheduling.userPods.nodeAffinity.matchNodePurpose")
    selector = {
        "matchExpressions": [
            {"key": "hub.jupyter.org/node-purpose", "operator": "In", "values": ["user"]}
        ]
    }
    if purpose == "prefer":
        c.KubeSpawner.node_affinity_preferred.append({"weight": 100, "preference": selector})
    elif purpose == "require":
        c.KubeSpawner.node_affinity_required.append(selector)
    elif purpose not in (None, "ignore"):
        raise ValueError(f"Unrecognized value for matchNodePurpose: {purpose}")
    tolerations = (get("scheduling.userPods.tolerations") or []) + (
        get("singleuser.extraTolerations") or []
    )
    if tolerations:
        c.KubeSpawner.tolerations = tolerations


def apply_storage(c, values: dict, by_name: bool) -> None:
    """The home volume, ``singleuser.extraFiles`` and extra volumes; ``by_name``: the
    volumes as a dict by name (4.3.0 on) instead of a list (4.1.0)."""
    get = lambda key, default=None: copy.deepcopy(lookup(values, key, default))  # noqa: E731
    volumes: dict[str, dict] = {}
    mounts: dict[str, dict] = {}
    storage = get("singleuser.storage.type")
    if storage == "dynamic":
        if get("singleuser.storage.dynamic.pvcNameTemplate"):
            c.KubeSpawner.pvc_name_template = get("singleuser.storage.dynamic.pvcNameTemplate")
        volume = get("singleuser.storage.dynamic.volumeNameTemplate")
        c.KubeSpawner.storage_pvc_ensure = True
        for trait, key in (
            ("storage_class", "dynamic.storageClass"),
            ("storage_access_modes", "dynamic.storageAccessModes"),
            ("storage_capacity", "capacity"),
        ):
            if get(f"singleuser.storage.{key}") is not None:
                setattr(c.KubeSpawner, trait, get(f"singleuser.storage.{key}"))
        volumes[volume] = {"name": volume, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        mounts[volume] = {
            "mountPath": get("singleuser.storage.homeMountPath"),
            "name": volume,
            "subPath": get("singleuser.storage.dynamic.subPath"),
        }
    elif storage == "static":
        claim = get("singleuser.storage.static.pvcName")
        volumes["home"] = {"name": "home", "persistentVolumeClaim": {"claimName": claim}}
        mounts["home"] = {
            "mountPath": get("singleuser.storage.homeMountPath"),
            "name": "home",
            "subPath": get("singleuser.storage.static.subPath"),
        }
    files = get("singleuser.extraFiles") or {}
    if files:
        items = []
        for key, details in files.items():
            item = {"key": key, "path": key}
            if "mode" in details:
                item["mode"] = details["mode"]
            items.append(item)
        secret = {"secretName": _full_name(values, "singleuser"), "items": items}
        volumes["files"] = {"name": "files", "secret": secret}
        for i, (key, details) in enumerate(files.items()):
            mounts[f"{i}-files"] = {
                "mountPath": details["mountPath"],
                "subPath": key,
                "name": "files",
            }
    extra_volumes = get("singleuser.storage.extraVolumes") or []
    extra_mounts = get("singleuser.storage.extraVolumeMounts") or []
    if not by_name:  # 4.1.0: lists, extended
        c.KubeSpawner.volumes = [*volumes.values(), *extra_volumes]
        c.KubeSpawner.volume_mounts = [*mounts.values(), *extra_mounts]
        return
    if isinstance(extra_volumes, dict):
        volumes.update(extra_volumes)
    else:
        volumes.update({v["name"]: v for v in extra_volumes})
    if isinstance(extra_mounts, dict):
        mounts.update(extra_mounts)
    else:
        mounts.update({f"{i}-{m['name']}": m for i, m in enumerate(extra_mounts)})
    c.KubeSpawner.volumes = volumes
    c.KubeSpawner.volume_mounts = mounts


def apply_services(c, values: dict) -> None:
    """The services and roles lists: the chart's culler, ``hub.services``, ``hub.loadRoles``."""
    get = lambda key, default=None: copy.deepcopy(lookup(values, key, default))  # noqa: E731
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if get("cull.enabled"):
        role = {
            "name": "jupyterhub-idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["jupyterhub-idle-culler"],
        }
        base_url = c.JupyterHub.get("base_url", "/").rstrip("/")
        hub_api = f"http://127.0.0.1:{os.environ['Z2JH_HUB_PORT']}{base_url}/hub/api"
        command = ["python3", "-m", "jupyterhub_idle_culler", f"--url={hub_api}"]
        for flag, key in (("timeout", "timeout"), ("cull-every", "every")):
            if get(f"cull.{key}"):
                command.append(f"--{flag}={get(f'cull.{key}')}")
        if get("cull.concurrency"):
            command.append(f"--concurrency={get('cull.concurrency')}")
        if get("cull.users"):
            command.append("--cull-users")
            role["scopes"].append("admin:users")
        if not get("cull.adminUsers"):
            command.append("--cull-admin-users=false")
        if get("cull.removeNamedServers"):
            command.append("--remove-named-servers")
        if get("cull.maxAge"):
            command.append(f"--max-age={get('cull.maxAge')}")
        c.JupyterHub.services.append({"name": "jupyterhub-idle-culler", "command": command})
        c.JupyterHub.load_roles.append(role)
    for key, service in (get("hub.services") or {}).items():
        service.setdefault("name", key)
        token = service.pop("apiToken", None)
        service["api_token"] = token or secrets.token_hex(32)  # the chart generates one
        c.JupyterHub.services.append(service)
    for key, role in (get("hub.loadRoles") or {}).items():
        role.setdefault("name", key)
        c.JupyterHub.load_roles.append(role)


def apply_server_command(c, values: dict) -> None:
    """``singleuser.cmd`` (an explicit null too), ``defaultUrl``, the metadata block, debug."""
    get = lambda key, default=None: copy.deepcopy(lookup(values, key, default))  # noqa: E731
    unspecified = object()
    cmd = lookup(values, "singleuser.cmd", unspecified)
    if cmd is not unspecified:
        c.Spawner.cmd = cmd
    if get("singleuser.defaultUrl") is not None:
        c.Spawner.default_url = get("singleuser.defaultUrl")
    metadata = get("singleuser.cloudMetadata") or {}
    if metadata.get("blockWithIptables") is True:
        from kubernetes_asyncio import client

        image = get("singleuser.networkTools.image")
        command = ["iptables", "--append", "OUTPUT", "--protocol", "tcp"]
        command += ["--destination", metadata["ip"], "--destination-port", "80", "--jump", "DROP"]
        c.KubeSpawner.init_containers.append(
            client.V1Container(
                name="block-cloud-metadata",
                image=f"{image['name']}:{image['tag']}",
                command=command,
                security_context=client.V1SecurityContext(
                    privileged=True,
                    run_as_user=0,
                    capabilities=client.V1Capabilities(add=["NET_ADMIN"]),
                ),
                resources=get("singleuser.networkTools.resources"),
            )
        )
    if get("debug.enabled"):
        c.JupyterHub.log_level = "DEBUG"
        c.Spawner.debug = True


def apply_chart(
    c, values: dict, config_d: Path | None, workdir: Path, version: str = CHART_PINNED
) -> None:
    """Configure ``c`` from ``values`` (defaults included, :func:`load_values`) as the
    chart's hub configuration file of ``version`` does."""
    apply_hub(c, values, workdir)
    apply_singleuser(c, values)
    apply_storage(c, values, by_name=VOLUMES_BY_NAME[version])
    apply_services(c, values)
    apply_server_command(c, values)

    c.JupyterHub.cookie_secret = bytes.fromhex(_secret(workdir, "cookie"))
    # the chart gives the hub its proxy token in $CONFIGPROXY_AUTH_TOKEN, from its Secret
    c.ConfigurableHTTPProxy.auth_token = _secret(workdir, "proxy-token")
    c.CryptKeeper.keys = [_secret(workdir, "crypt-key")]
    for section, cfg in copy.deepcopy(lookup(values, "hub.config") or {}).items():
        if section == "JupyterHub":
            for key in ("proxy_auth_token", "cookie_secret", "services"):
                cfg.pop(key, None)
        elif section == "ConfigurableHTTPProxy":
            cfg.pop("auth_token", None)
        elif section == "CryptKeeper":
            cfg.pop("keys", None)
        if not section[:1].isupper():
            sys.exit(f"FATAL: Invalid hub.config section name: {section}.")
        c[section].update(cfg)

    get_config = lambda key, default=None: copy.deepcopy(lookup(values, key, default))  # noqa: E731
    namespace = {"c": c, "get_config": get_config, "__name__": "z2jh_hub_config"}
    if config_d is not None and config_d.is_dir():
        for path in sorted(config_d.glob("*.py")):
            exec(compile(path.read_text(), path.name, "exec"), namespace)
    for key, source in sorted((lookup(values, "hub.extraConfig") or {}).items()):
        exec(compile(source, f"hub.extraConfig.{key}", "exec"), namespace)


# Where the chart's hub configuration loads the image's own files from.
CONFIG_D = "/usr/local/etc/jupyterhub/jupyterhub_config.d/"


def hub_image_config_d(recipe: Path = REPO / "deploy" / "Dockerfile") -> dict[str, Path]:
    """File name -> repository file, for what the hub image's recipe copies into the
    chart's config.d (the files the chart test loads, :func:`write_config_d`)."""
    from .images import copy_steps

    placed = {}
    for sources, destination in copy_steps(recipe):
        if destination.startswith(CONFIG_D):
            name = destination[len(CONFIG_D) :] or Path(sources[0]).name
            placed[name] = REPO / sources[0]
    return placed


def write_config_d(directory: Path) -> Path:
    """The hub image's config.d, made from the recipe's own COPY steps."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, source in hub_image_config_d().items():
        (directory / name).write_text(source.read_text())
    return directory


def apply_from_environment(c) -> None:
    """:func:`apply_chart` with ``$Z2JH_VALUES`` (paths joined by ``:``), ``$Z2JH_CONFIG_D``
    and ``$Z2JH_CHART_VERSION`` (default: the pinned version)."""
    version = os.environ.get("Z2JH_CHART_VERSION", CHART_PINNED)
    paths = [p for p in os.environ["Z2JH_VALUES"].split(os.pathsep) if p]
    config_d = os.environ.get("Z2JH_CONFIG_D")
    values = load_values(*paths, version=version)
    apply_chart(c, values, Path(config_d) if config_d else None, Path.cwd(), version)
