"""The dask-gateway Helm chart's configuration, rendered from values as its templates do
(helm cannot run here): the gateway's and the controller's ``dask_gateway_config.py``
(templates/gateway/configmap.yaml, templates/controller/configmap.yaml) and the objects
the chart creates for routing (the gateway's Service, IngressRoute and Middlewares).
Only what pangeohub's values use is rendered; anything else fails loudly."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

DEFAULTS = {
    "gateway": {"prefix": "/", "loglevel": "INFO", "backend": {}, "extraConfig": {}},
    "controller": {
        "loglevel": "INFO",
        "completedClusterMaxAge": 86400,
        "completedClusterCleanupPeriod": 600,
        "backoffBaseDelay": 0.1,
        "backoffMaxDelay": 300,
        "k8sApiRateLimit": 50,
        "k8sApiRateLimitBurst": 100,
    },
    "traefik": {"service": {"ports": {"web": {"port": 80}, "tcp": {"port": "web"}}}},
}
BACKEND_FIELDS = [
    ("scheduler_cores", "scheduler.cores.request"),
    ("scheduler_cores_limit", "scheduler.cores.limit"),
    ("scheduler_memory", "scheduler.memory.request"),
    ("scheduler_memory_limit", "scheduler.memory.limit"),
    ("worker_cores", "worker.cores.request"),
    ("worker_cores_limit", "worker.cores.limit"),
    ("worker_memory", "worker.memory.request"),
    ("worker_memory_limit", "worker.memory.limit"),
    ("worker_threads", "worker.threads"),
    ("image_pull_policy", "image.pullPolicy"),
    ("environment", "environment"),
    ("namespace", "namespace"),
]


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _get(values: dict, key: str):
    for part in key.split("."):
        if not isinstance(values, dict) or part not in values:
            return None
        values = values[part]
    return values


class Chart:
    """One release of the chart: ``Chart(values_files, release="dask-gateway", namespace=...)``."""

    def __init__(self, *values: Path | dict, release: str = "dask-gateway", namespace: str):
        self.sources = values
        merged = DEFAULTS
        for v in values:
            merged = _merge(merged, v if isinstance(v, dict) else yaml.safe_load(v.read_text()))
        self.values, self.namespace = merged, namespace
        self.fullname = release if "dask-gateway" in release else f"{release}-dask-gateway"
        self.api_name = f"api-{self.fullname}"[:63]
        self.prefix = self.values["gateway"]["prefix"]

    @property
    def api_url(self) -> str:
        return f"http://{self.api_name}.{self.namespace}:8000/api"

    def gateway_config(self) -> str:
        """templates/gateway/configmap.yaml's dask_gateway_config.py."""
        g = self.values["gateway"]
        auth = g.get("auth") or {}
        lines = [
            f"c.DaskGateway.log_level = {g['loglevel']!r}",
            'c.DaskGateway.address = ":8000"',
            f"c.KubeBackend.api_url = {self.api_url!r}",
            'c.DaskGateway.backend_class = "dask_gateway_server.backends.kubernetes.KubeBackend"',
            f"c.KubeBackend.gateway_instance = {self.fullname!r}",
        ]
        image = _get(g, "backend.image.name")
        if image:
            tag = _get(g, "backend.image.tag")
            lines.append(f"c.KubeClusterConfig.image = {f'{image}:{tag}' if tag else image!r}")
        for field, prop in BACKEND_FIELDS:
            value = _get(g, "backend." + prop)
            if value is not None:
                lines.append(f"c.KubeClusterConfig.{field} = {json.loads(json.dumps(value))!r}")
        if auth.get("type") != "jupyterhub":
            raise NotImplementedError(f"auth type {auth.get('type')!r} is not rendered here")
        hub = auth.get("jupyterhub") or {}
        lines.append(
            'c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"'
        )
        if not hub.get("apiUrl"):
            raise NotImplementedError("gateway.auth.jupyterhub.apiUrl must be set")
        lines.append(f"c.JupyterHubAuthenticator.jupyterhub_api_url = {hub['apiUrl']!r}")
        if hub.get("jupyterhubServiceName"):
            name = hub["jupyterhubServiceName"]
            lines.append(f"c.JupyterHubAuthenticator.jupyterhub_service_name = {name!r}")
        extra = g.get("extraConfig") or {}
        if isinstance(extra, str):
            lines += ["# From gateway.extraConfig", extra]
        else:
            for key in sorted(extra):
                lines += [f"# From gateway.extraConfig.{key}", extra[key]]
        return "\n".join(lines) + "\n"

    def controller_config(self) -> str:
        """templates/controller/configmap.yaml's dask_gateway_config.py."""
        k = self.values["controller"]
        lines = [
            'c.KubeController.address = ":8000"',
            f"c.KubeController.api_url = {self.api_url!r}",
            f"c.KubeController.gateway_instance = {self.fullname!r}",
            f"c.KubeController.proxy_prefix = {self.prefix!r}",
            "c.KubeController.proxy_web_middlewares = "
            + repr([{"name": self.clusters_middleware, "namespace": self.namespace}]),
            f"c.KubeController.log_level = {k['loglevel']!r}",
            f"c.KubeController.completed_cluster_max_age = {k['completedClusterMaxAge']}",
            "c.KubeController.completed_cluster_cleanup_period = "
            f"{k['completedClusterCleanupPeriod']}",
            f"c.KubeController.backoff_base_delay = {k['backoffBaseDelay']}",
            f"c.KubeController.backoff_max_delay = {k['backoffMaxDelay']}",
            f"c.KubeController.k8s_api_rate_limit = {k['k8sApiRateLimit']}",
            f"c.KubeController.k8s_api_rate_limit_burst = {k['k8sApiRateLimitBurst']}",
        ]
        if str(self.values["traefik"]["service"]["ports"]["tcp"]["port"]) == "web":
            lines.append('c.KubeController.proxy_tcp_entrypoint = "web"')
        return "\n".join(lines) + "\n"

    @property
    def clusters_middleware(self) -> str:
        return f"clusters-prefix-{self.fullname}"[:63].rstrip("-")

    def routing_objects(self) -> list[tuple[str, dict]]:
        """(plural, object): the gateway's Service, IngressRoute and Middlewares."""
        labels = {"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/instance": "x"}
        bare = self.prefix.rstrip("/")
        route = {
            "match": f"PathPrefix(`{self.prefix}`)",
            "kind": "Rule",
            "services": [{"name": self.api_name, "port": 8000}],
        }
        objects = [
            (
                "services",
                {
                    "metadata": {"name": self.api_name, "labels": labels},
                    "spec": {
                        "type": "ClusterIP",
                        "selector": {"app.kubernetes.io/component": "gateway", **labels},
                        "ports": [{"protocol": "TCP", "port": 8000, "targetPort": 8000}],
                    },
                },
            ),
            (
                "middlewares",
                {
                    "metadata": {"name": self.clusters_middleware, "labels": labels},
                    "spec": {"stripPrefixRegex": {"regex": [f"{bare}/clusters/[a-zA-Z0-9.-]+"]}},
                },
            ),
        ]
        if self.prefix != "/":
            api_mw = f"api-prefix-{self.fullname}"[:63].rstrip("-")
            route["middlewares"] = [{"name": api_mw}]
            objects.append(
                (
                    "middlewares",
                    {
                        "metadata": {"name": api_mw, "labels": labels},
                        "spec": {"stripPrefix": {"prefixes": [bare]}},
                    },
                )
            )
        objects.append(
            (
                "ingressroutes",
                {
                    "apiVersion": "traefik.io/v1alpha1",
                    "kind": "IngressRoute",
                    "metadata": {"name": self.api_name, "labels": labels},
                    "spec": {"entryPoints": ["web"], "routes": [route]},
                },
            )
        )
        return objects

    # --- the Deployments' pods, ConfigMaps and Secret -------------------------

    def labels(self, component: str) -> dict:
        return {
            "app.kubernetes.io/name": "dask-gateway",
            "app.kubernetes.io/instance": "x",
            "app.kubernetes.io/component": component,
        }

    def config_objects(self, api_token: str) -> list[tuple[str, dict]]:
        """The two ConfigMaps and the gateway's Secret (the hub API token)."""
        import base64

        token = base64.b64encode(api_token.encode()).decode()
        return [
            (
                "configmaps",
                {
                    "metadata": {"name": self.api_name},
                    "data": {"dask_gateway_config.py": self.gateway_config()},
                },
            ),
            (
                "configmaps",
                {
                    "metadata": {"name": f"controller-{self.fullname}"[:63]},
                    "data": {"dask_gateway_config.py": self.controller_config()},
                },
            ),
            (
                "secrets",
                {"metadata": {"name": self.api_name}, "data": {"jupyterhub-api-token": token}},
            ),
        ]

    def _pod(self, component: str, name: str, args: list[str], env: list[dict]) -> dict:
        g = self.values["gateway"]
        return {
            "metadata": {"generateName": f"{name}-", "labels": self.labels(component)},
            "spec": {
                "containers": [
                    {
                        "name": component,
                        "image": f"{g['image']['name']}:{g['image']['tag']}",
                        "args": args,
                        "env": env,
                        "ports": [{"containerPort": 8000, "name": "api"}],
                        "readinessProbe": {"httpGet": {"path": "/api/health", "port": "api"}},
                        "volumeMounts": [{"mountPath": "/etc/dask-gateway/", "name": "configmap"}],
                    }
                ],
                "volumes": [{"name": "configmap", "configMap": {"name": name}}],
                "terminationGracePeriodSeconds": 5,
            },
        }

    def gateway_pod(self, extra_env: list[dict] = ()) -> dict:
        """A pod of templates/gateway/deployment.yaml."""
        env = [
            *extra_env,
            {
                "name": "JUPYTERHUB_API_TOKEN",
                "valueFrom": {
                    "secretKeyRef": {"name": self.api_name, "key": "jupyterhub-api-token"}
                },
            },
        ]
        args = ["dask-gateway-server", "--config", "/etc/dask-gateway/dask_gateway_config.py"]
        return self._pod("gateway", self.api_name, args, env)

    def controller_pod(self, extra_env: list[dict] = ()) -> dict:
        """A pod of templates/controller/deployment.yaml."""
        args = [
            "dask-gateway-server",
            "kube-controller",
            "--config",
            "/etc/dask-gateway/dask_gateway_config.py",
        ]
        pod = self._pod("controller", f"controller-{self.fullname}"[:63], args, list(extra_env))
        del pod["spec"]["containers"][0]["readinessProbe"]
        return pod
