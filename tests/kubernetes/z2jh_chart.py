"""A test stand-in for the hub configuration file of the Zero to JupyterHub chart.

The chart's hub image runs its own ``jupyterhub_config.py``, which reads the Helm values
(mounted from a Secret) and turns them into traitlets configuration. This module does the
same, in the same order, for the keys pangeohub's values use, and nothing
pangeohub-specific:

1. the spawner is ``kubespawner.KubeSpawner``; the hub keeps user pods when it stops;
2. ``singleuser.image``, ``storage`` (dynamic), ``extraFiles`` (as volumes), ``extraLabels``,
   ``extraEnv``, ``cmd``, ``defaultUrl`` set KubeSpawner;
3. the services and roles lists start empty; ``cull.*`` adds the chart's own
   ``jupyterhub-idle-culler`` service; ``hub.services`` and ``hub.loadRoles`` are appended;
4. ``hub.config``: each section is applied with ``c[Section].update(cfg)`` (secrets and
   ``JupyterHub.services`` dropped first, as the chart does);
5. the hub image's ``jupyterhub_config.d/*.py`` files run in name order, then
   ``hub.extraConfig`` entries in sorted key order, all in one namespace where ``c`` is
   the configuration and ``get_config(key)`` reads the values (as the chart's ``z2jh``).

Values files are merged as ``helm -f a.yaml -f b.yaml`` merges them (maps recursively,
anything else replaced), over the chart's defaults for the keys handled here.

What stands in for the cluster (the only differences from the chart): the proxy runs on
loopback, started by the hub, instead of in its own pod; the hub's addresses come from
``Z2JH_*`` variables the test sets instead of Kubernetes Service variables; the chart's
generated secrets (cookie secret, crypt key) are generated once into the working directory;
the hub finds the (fake) API server through ``$KUBECONFIG`` where the chart's uses the pod's
service account. Network policies and ``hub.service.extraPorts`` are Kubernetes objects the
fake API does not enforce; ``tests/kubernetes/test_z2jh_values.py`` checks them.

Use it as the hub's configuration file, with the test's settings in the environment::

    Z2JH_VALUES=deploy/values.yaml:overlay.yaml Z2JH_CONFIG_D=<dir> \\
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

# The chart's default values for the keys handled here (from the chart's values.yaml).
CHART_DEFAULTS: dict = {
    "hub": {
        "config": {"JupyterHub": {"admin_access": True, "authenticator_class": "dummy"}},
        "services": {},
        "loadRoles": {},
        "extraConfig": {},
        "allowNamedServers": False,
    },
    "singleuser": {
        "extraLabels": {"hub.jupyter.org/network-access-hub": "true"},
        "extraFiles": {},
        "extraEnv": {},
        "storage": {
            "type": "dynamic",
            "capacity": "10Gi",
            "homeMountPath": "/home/jovyan",
            "dynamic": {
                "pvcNameTemplate": None,
                "volumeNameTemplate": "volume-{user_server}",
                "storageAccessModes": ["ReadWriteOnce"],
            },
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
}


def merge(base: Mapping, override: Mapping) -> dict:
    """``override`` over ``base`` as Helm merges values files (``null`` removes a key)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_values(*paths: str | os.PathLike) -> dict:
    """The chart's defaults, then each values file in order (``helm -f a -f b``)."""
    values = CHART_DEFAULTS
    for path in paths:
        values = merge(values, yaml.safe_load(Path(path).read_text()) or {})
    return values


def lookup(values: dict, key: str, default=None):
    """``values["a"]["b"]`` for ``"a.b"``, like the chart's ``z2jh.get_config``."""
    value = values
    for level in key.split("."):
        if not isinstance(value, dict) or level not in value:
            return default
        value = value[level]
    return value


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), name)


def _secret(workdir: Path, name: str) -> str:
    """A chart-generated secret: made once, kept (as the chart keeps its Secret)."""
    path = workdir / f"chart-secret-{name}"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text()


def apply_singleuser(c, values: dict) -> None:
    """KubeSpawner from ``singleuser.*`` (the keys pangeohub's values use)."""
    get = lambda key, default=None: lookup(values, key, default)  # noqa: E731
    c.KubeSpawner.namespace = os.environ.get("POD_NAMESPACE", "default")
    for trait in ("extra_labels", "start_timeout", "node_selector"):
        value = get("singleuser." + _camel(trait))
        if value is not None:
            setattr(c.KubeSpawner, trait, value)
    env = get("singleuser.extraEnv")
    if env:
        c.KubeSpawner.environment = env
    image = get("singleuser.image.name")
    if image:
        tag = get("singleuser.image.tag")
        c.KubeSpawner.image = f"{image}:{tag}" if tag else image

    volumes, mounts = {}, {}
    if get("singleuser.storage.type") == "dynamic":
        template = get("singleuser.storage.dynamic.pvcNameTemplate")
        if template:
            c.KubeSpawner.pvc_name_template = template
        volume = get("singleuser.storage.dynamic.volumeNameTemplate")
        c.KubeSpawner.storage_pvc_ensure = True
        for trait, key in (
            ("storage_class", "storageClass"),
            ("storage_access_modes", "storageAccessModes"),
        ):
            if get(f"singleuser.storage.dynamic.{key}") is not None:
                setattr(c.KubeSpawner, trait, get(f"singleuser.storage.dynamic.{key}"))
        if get("singleuser.storage.capacity") is not None:
            c.KubeSpawner.storage_capacity = get("singleuser.storage.capacity")
        volumes[volume] = {"name": volume, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        mounts[volume] = {"mountPath": get("singleuser.storage.homeMountPath"), "name": volume}
    files = get("singleuser.extraFiles") or {}
    if files:
        items = [{"key": key, "path": key} for key in files]
        volumes["files"] = {"name": "files", "secret": {"secretName": "singleuser", "items": items}}
        for i, (key, details) in enumerate(files.items()):
            mounts[f"{i}-files"] = {
                "mountPath": details["mountPath"],
                "subPath": key,
                "name": "files",
            }
    c.KubeSpawner.volumes = volumes
    c.KubeSpawner.volume_mounts = mounts


def apply_services(c, values: dict) -> None:
    """The services and roles lists: the chart's culler, ``hub.services``, ``hub.loadRoles``."""
    get = lambda key, default=None: lookup(values, key, default)  # noqa: E731
    c.JupyterHub.services = []
    c.JupyterHub.load_roles = []
    if get("cull.enabled"):
        role = {
            "name": "jupyterhub-idle-culler",
            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
            "services": ["jupyterhub-idle-culler"],
        }
        hub_api = f"http://127.0.0.1:{os.environ['Z2JH_HUB_PORT']}/hub/api"
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
        service = dict(service, name=service.get("name", key))
        token = service.pop("apiToken", None)
        if token:
            service["api_token"] = token
        c.JupyterHub.services.append(service)
    for key, role in (get("hub.loadRoles") or {}).items():
        c.JupyterHub.load_roles.append(dict(role, name=role.get("name", key)))


def apply_chart(c, values: dict, config_d: Path | None, workdir: Path) -> None:
    """Configure ``c`` from ``values`` as the chart's hub configuration file does."""
    get = lambda key, default=None: lookup(values, key, default)  # noqa: E731
    c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
    c.JupyterHub.cleanup_servers = False
    c.JupyterHub.last_activity_interval = 60
    c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 0}
    c.JupyterHub.db_url = f"sqlite:///{workdir / 'jupyterhub.sqlite'}"  # hub.db.type sqlite-pvc
    if get("hub.allowNamedServers") is not None:
        c.JupyterHub.allow_named_servers = get("hub.allowNamedServers")

    # Stand-in for the cluster: the proxy and the hub's Service on loopback.
    c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['Z2JH_PUBLIC_PORT']}"
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['Z2JH_PROXY_API_PORT']}"
    c.ConfigurableHTTPProxy.command = [str(REPO / "node_modules/.bin/configurable-http-proxy")]
    c.ConfigurableHTTPProxy.pid_file = str(workdir / "proxy.pid")
    c.JupyterHub.pid_file = str(workdir / "jupyterhub.pid")
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{os.environ['Z2JH_HUB_PORT']}"
    c.JupyterHub.hub_connect_url = f"http://127.0.0.1:{os.environ['Z2JH_HUB_PORT']}"

    apply_singleuser(c, values)
    apply_services(c, values)
    if "cmd" in values.get("singleuser", {}):
        c.Spawner.cmd = get("singleuser.cmd")
    if get("singleuser.defaultUrl") is not None:
        c.Spawner.default_url = get("singleuser.defaultUrl")

    c.JupyterHub.cookie_secret = bytes.fromhex(_secret(workdir, "cookie"))
    c.CryptKeeper.keys = [_secret(workdir, "crypt-key")]
    for section, cfg in copy.deepcopy(get("hub.config") or {}).items():
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

    namespace = {"c": c, "get_config": get, "__name__": "z2jh_hub_config"}
    if config_d is not None and config_d.is_dir():
        for path in sorted(config_d.glob("*.py")):
            exec(compile(path.read_text(), path.name, "exec"), namespace)
    for key, source in sorted((get("hub.extraConfig") or {}).items()):
        exec(compile(source, f"hub.extraConfig.{key}", "exec"), namespace)


def apply_from_environment(c) -> None:
    """:func:`apply_chart` with ``$Z2JH_VALUES`` (paths joined by ``:``), ``$Z2JH_CONFIG_D``."""
    paths = [p for p in os.environ["Z2JH_VALUES"].split(os.pathsep) if p]
    config_d = os.environ.get("Z2JH_CONFIG_D")
    apply_chart(c, load_values(*paths), Path(config_d) if config_d else None, Path.cwd())
