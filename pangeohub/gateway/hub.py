"""The hub's side of Dask Gateway: the service, every server's settings, the stop hook.

``wire_gateway(c)`` (part of :func:`pangeohub.configure`) registers dask-gateway-server
as a hub-managed service (or an external one, e.g. the dask-gateway Helm chart's) and
grants users the scope to use it. pangeohub's spawners then give every server the
``DASK_GATEWAY__*`` settings that make ``GatewayCluster()`` work with no arguments, and
stop a server's clusters when the server stops (:meth:`GatewayService.environment`,
:meth:`GatewayService.stop_server_clusters`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import aiohttp
from jupyterhub.httpclient import fetch
from traitlets import Bool, Callable, Int, List, Unicode, default
from traitlets.config import Configurable
from traitlets.utils.importstring import import_item

from ..endpoints import hub_ports
from ..environment_hooks import collect_environment
from ..hubconfig import (
    config_list,
    grant_scopes,
    register_role,
    register_service,
    service_settings,
    write_service_settings,
)
from ..isolation.gateway import local_backend_class
from ..numbers import FiniteFloat
from ..state import STATE_DIR_ENV, StateDirectory
from .auth import PangeoJupyterHubAuthenticator
from .dashboard import DashboardGuard, wire_dashboards
from .hub_routes import SERVER_ROUTE, STOP_ROUTE
from .worker_tokens import WORKER_TOKEN_ROUTE, WORKER_TOKEN_SCOPE, WorkerTokenHandler


def server_tag(name: str) -> str:
    """How a cluster records the hub server it came from: "/" or "/<name>"."""
    return "/" + (name or "")


class GatewayService(Configurable):
    """Where the gateway runs and how servers reach it (``c.GatewayService``)."""

    enabled = Bool(
        True,
        help="""Use Dask Gateway: register it as a hub service and give every server the
        settings ``GatewayCluster()`` needs. False: no Dask Gateway on this hub.""",
    ).tag(config=True)
    service_name = Unicode("dask-gateway", help="The gateway's JupyterHub service name.").tag(
        config=True
    )
    managed = Bool(
        True,
        help="""Whether the hub starts the gateway (the local backend). False when the
        gateway runs elsewhere (e.g. the dask-gateway Helm chart on Kubernetes): then
        set ``service_url``, ``address`` and ``proxy_address``.""",
    ).tag(config=True)
    config_file = Unicode(
        help="""The managed gateway's dask-gateway-server configuration file. Default:
        pangeohub's own (pangeohub/gateway/local_gateway_config.py: local processes with
        pangeohub's options and limits). Set the gateway's settings (``c.GatewayPolicy``,
        ``c.ClusterConfig``, ...) in the hub's configuration instead of editing it.""",
    ).tag(config=True)

    @default("config_file")
    def _default_config_file(self):
        return str(Path(__file__).with_name("local_gateway_config.py"))

    port = Int(
        min=1,
        max=65535,
        help="Loopback port of the gateway's HTTP proxy (managed gateway); default: a free "
        "one, chosen when the hub starts.",
    ).tag(config=True)
    scheduler_port = Int(
        min=1,
        max=65535,
        help="Loopback port of the gateway's scheduler (TLS) proxy (managed gateway); "
        "default: a free one, chosen when the hub starts.",
    ).tag(config=True)
    service_url = Unicode(help="URL the hub routes /services/<name>/ to.").tag(config=True)
    address = Unicode(
        help="""Gateway API address servers use (DASK_GATEWAY__ADDRESS). Default, for a
        managed gateway: the dashboard guard in front of the gateway's proxy (servers
        reach dashboards only through it, as browsers do); else the service URL.""",
    ).tag(config=True)
    proxy_address = Unicode(
        help="Scheduler proxy address servers use (DASK_GATEWAY__PROXY_ADDRESS)."
    ).tag(config=True)
    public_address = Unicode(
        help="""Gateway address as browsers see it, for dashboard links
        (DASK_GATEWAY__PUBLIC_ADDRESS); default: through the hub, /services/<name>.""",
    ).tag(config=True)
    base_url = Unicode(help="The hub's base URL; default: c.JupyterHub.base_url.").tag(config=True)
    api_token = Unicode(help="The gateway's hub API token (default: kept in the state dir).").tag(
        config=True
    )
    worker_environment_hooks = List(
        Callable(),
        help="""Callables ``hook(spawner) -> dict`` (may be async) whose variables go to
        the workers of clusters started from that server, e.g. the scratch variables.
        Default: pangeohub's scratch hook (when scratch is enabled) and, on one machine,
        the server's home (its ``pip install --user`` packages).""",
    ).tag(config=True)
    worker_token_scopes = List(
        Unicode(),
        ["access:services!service=scratch"],
        help="""Scopes of the token the workers of each server's clusters get (as their
        $JUPYTERHUB_API_TOKEN, e.g. for scratch credentials). The hub makes it when the
        gateway asks, as the server's first cluster starts (a server that never starts a
        cluster gets none), and revokes it when the server stops. It never holds more
        than its user. Empty: no token.""",
    ).tag(config=True)

    worker_token_lifetime = Int(
        86400,
        min=300,
        help="""Seconds the workers' token lives. A cluster that starts when less than half
        of that is left gets a new one (older clusters keep theirs until it expires or the
        server stops). A worker running longer than this loses what the token gave it.""",
    ).tag(config=True)

    @default("worker_environment_hooks")
    def _default_worker_environment_hooks(self):
        from ..environments.servers import workers_environment
        from ..scratch.hook import scratch_environment
        from ..scratch.settings import ScratchService

        hooks = [scratch_environment] if ScratchService(parent=self).enabled else []
        return [*hooks, workers_environment]

    request_timeout = FiniteFloat(
        10,
        min=0.1,
        help="""Seconds the hub's hooks wait for the gateway (start and stop of servers).
        A starting server's report runs beside the rest of its start, which ends once the
        gateway has answered or this has passed.""",
    ).tag(config=True)

    @default("port")
    def _default_port(self):
        return hub_ports().gateway

    @default("scheduler_port")
    def _default_scheduler_port(self):
        return hub_ports().gateway_scheduler

    @default("base_url")
    def _default_base_url(self):
        return self.config.JupyterHub.get("base_url", "/")

    @default("service_url")
    def _default_service_url(self):
        # a managed gateway behind the dashboard guard: the hub routes to the guard
        guard = DashboardGuard(parent=self)
        port = guard.port if self.managed and guard.enabled else self.port
        return f"http://127.0.0.1:{port}"

    @property
    def prefix(self) -> str:
        return f"{self.base_url.rstrip('/')}/services/{self.service_name}"

    @default("address")
    def _default_address(self):
        # a managed gateway's service URL is the dashboard guard's (wire_dashboards)
        return f"{self.service_url}{self.prefix}"

    @property
    def internal_address(self) -> str:
        """Where the hub and the dashboard guard reach the gateway's API: a managed
        gateway's own proxy (unguarded, so never given to a server), else ``address``."""
        if self.managed:
            return f"http://127.0.0.1:{self.port}{self.prefix}"
        return self.address

    @default("proxy_address")
    def _default_proxy_address(self):
        return f"gateway://127.0.0.1:{self.scheduler_port}"

    @default("public_address")
    def _default_public_address(self):
        return self.prefix

    @default("api_token")
    def _default_api_token(self):
        return StateDirectory.from_env().secret("dask_gateway_api_token")

    # --- registration ------------------------------------------------------

    def service(self) -> dict:
        """The entry for ``c.JupyterHub.services``; a managed gateway reads where it
        listens from its command line."""
        spec = {
            "name": self.service_name,
            "url": self.service_url,
            "api_token": self.api_token,
            "display": False,  # an API, not a page for the hub's Services menu
        }
        if self.managed:
            spec["command"] = [
                sys.executable,
                "-m",
                "dask_gateway_server",
                "-f",
                self.config_file,
                f"--Proxy.address=127.0.0.1:{self.port}",
                f"--Proxy.tcp_address=127.0.0.1:{self.scheduler_port}",
                f"--Proxy.prefix={self.prefix}",
            ]
            # It reads the hub's settings from <state dir>/services/<service name>.json.
            spec["environment"] = {STATE_DIR_ENV: str(StateDirectory.from_env().path)}
        return spec

    @property
    def access_scope(self) -> str:
        return f"access:services!service={self.service_name}"

    # --- hooks ---------------------------------------------------------------

    async def environment(self, spawner) -> dict[str, str]:
        """Every server's Dask Gateway settings: ``GatewayCluster()`` needs no arguments.

        Also tells the gateway the server's image (the user's workers may run it) and
        what the workers of clusters started from it get (scratch variables, a token).
        """
        env = {
            "DASK_GATEWAY__ADDRESS": self.address,
            "DASK_GATEWAY__PROXY_ADDRESS": self.proxy_address,
            "DASK_GATEWAY__PUBLIC_ADDRESS": self.public_address,
            "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            # Values quoted so Dask's config parser keeps them strings.
            "DASK_GATEWAY__CLUSTER__OPTIONS__SERVER": json.dumps(server_tag(spawner.name)),
        }
        profile = getattr(spawner, "profile", None)
        image = getattr(profile, "image", None) or getattr(spawner, "image", "")
        image = image if isinstance(image, str) else ""
        if image:
            # Workers run the server's own image by default.
            env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] = json.dumps(image)
        report = self.report_server(spawner, image)
        defer = getattr(spawner, "defer_until_started", None)
        if callable(defer):  # pangeohub's spawners: beside the rest of the start
            defer(report)
        else:
            await report
        return env

    async def report_server(self, spawner, image: str) -> None:
        """Tell the gateway about a server that starts: its image and what its workers get
        (no variable of the server itself depends on the answer, so pangeohub's spawners
        run this beside the rest of the start and wait for it only at its end).

        The workers' token is not made here: the gateway asks for it when the server's
        first cluster starts (:meth:`mint_worker_token`), so a start that never uses Dask
        costs no token, and no start waits for a database commit."""
        body = {
            "user": spawner.user.name,
            "server": server_tag(spawner.name),
            "image": image,
            "environment": await self.worker_environment(spawner),
            "worker_token": bool(self.worker_token_scopes),
        }
        pod, namespace = getattr(spawner, "pod_name", None), getattr(spawner, "namespace", None)
        if isinstance(pod, str) and isinstance(namespace, str):
            body.update(pod=pod, namespace=namespace)  # KubeSpawner: clusters owned by the pod
        await self._call_gateway(spawner, SERVER_ROUTE, body)

    def _token_note(self, spawner) -> str:
        return f"Dask workers of server {server_tag(spawner.name)}"

    async def worker_environment(self, spawner) -> dict[str, str]:
        """What the workers of this server's clusters get besides their token (pangeohub
        sets it, users cannot override it): the worker hooks' variables."""
        return await collect_environment(
            self.worker_environment_hooks, spawner, "Dask worker environment hook"
        )

    def mint_worker_token(self, spawner) -> tuple[str, int]:
        """A new token for the workers of ``spawner``'s server and its lifetime in seconds
        (the gateway asks when a cluster starts and the token it has is half gone).

        Tokens made for an earlier run of the same server, left by a stop the hub missed,
        are deleted in the same commit; this run's earlier tokens live on until they
        expire or the server stops (running workers hold them)."""
        started = spawner.orm_spawner.started
        for token in self._worker_tokens(spawner):
            if started is not None and token.created is not None and token.created < started:
                spawner.user.db.delete(token)
        token = spawner.user.new_api_token(
            note=self._token_note(spawner),
            scopes=list(self.worker_token_scopes),
            expires_in=self.worker_token_lifetime,
        )
        return token, self.worker_token_lifetime

    def _worker_tokens(self, spawner) -> list:
        note = self._token_note(spawner)
        return [t for t in spawner.user.api_tokens if t.note == note]

    def revoke_worker_tokens(self, spawner) -> int:
        """Delete the tokens made for the workers of this server; how many there were."""
        stale = self._worker_tokens(spawner)
        for token in stale:
            spawner.user.db.delete(token)
        if stale:
            spawner.user.db.commit()
        return len(stale)

    async def stop_server_clusters(self, spawner) -> list[str]:
        """Shut down the clusters started from ``spawner``'s server (post-stop hook)."""
        self.revoke_worker_tokens(spawner)
        body = {"user": spawner.user.name, "server": server_tag(spawner.name)}
        result = await self._call_gateway(spawner, STOP_ROUTE, body)
        stopped = result.get("stopped", [])
        if stopped:
            spawner.log.info("Stopped %d Dask cluster(s) of %s", len(stopped), spawner._log_name)
        return stopped

    async def _call_gateway(self, spawner, route: str, body: dict) -> dict:
        """POST ``body`` to one of the gateway's pangeohub routes; {} if it fails."""
        try:
            # JupyterHub's shared client for requests inside the hub (kept-alive connections)
            response = await fetch(
                f"{self.internal_address}{route}",
                method="POST",
                data=json.dumps(body),
                headers={
                    "Authorization": f"token {self.api_token}",
                    "Content-Type": "application/json",
                },
                raise_for_status=False,
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
            )
            answer = await response.read()
            if response.status >= 400:
                raise _GatewayRefused(response.status)
            return json.loads(answer)
        except (_GatewayRefused, aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            spawner.log.warning(
                "Dask Gateway did not answer %s for %s (%s)",
                route,
                spawner._log_name,
                getattr(error, "code", type(error).__name__),
            )
            return {}


class _GatewayRefused(Exception):
    """The gateway answered an error status (``code``)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def profile_images(c) -> list[dict]:
    """The images of the hub's profiles and who may use them, for the gateway."""
    from ..policy import PangeoPolicy

    try:
        profiles = PangeoPolicy(config=c).all_profiles()
    except ValueError:
        return []  # pangeohub's start-up checks report the profile's problem
    return [{"image": p.image, "groups": sorted(p.groups)} for p in profiles if p.image]


def wire_gateway(c) -> GatewayService | None:
    """Register the gateway service (managed, or external when ``managed`` is False) and
    its scopes in the hub's final configuration ``c`` (part of :func:`pangeohub.configure`)."""
    gateway = GatewayService(config=c)
    if not gateway.enabled:
        return None
    if gateway.managed and not Path(gateway.config_file).is_file():
        raise ValueError(
            f"c.GatewayService.config_file is {gateway.config_file!r}, which is not a file: "
            "fix the path, leave it unset for pangeohub's own, or set "
            "c.GatewayService.managed = False for a gateway deployed elsewhere."
        )
    guarded = DashboardGuard(config=c).enabled
    if gateway.managed:
        extra = {"GatewayPolicy": {"server_images": gateway_server_images(c)}}
        backend = extra.setdefault("PangeoLocalBackend", {})
        if not clusters_stop_with_hub(c):
            backend["stop_clusters_on_shutdown"] = False
        if "dashboards_guarded" not in c.PangeoLocalBackend:
            # the guard is the only way to a cluster's dashboard (pangeohub.dask_gate)
            backend["dashboards_guarded"] = guarded
        write_service_settings(
            gateway.service_name, service_settings(c, managed_gateway_classes(c), extra)
        )
    wire_dashboards(c, gateway)
    spec = gateway.service()
    if guarded:
        spec["oauth_no_confirm"] = True  # the guard signs people in as this service
    register_service(c, spec)
    grant_scopes(c, "user", [gateway.access_scope])
    grant_scopes(c, "server", [gateway.access_scope])
    # The gateway reads servers, to stop clusters whose server stopped while it was down.
    role = f"{gateway.service_name}-service"
    scopes = ["read:users:name", "read:servers"]
    if gateway.worker_token_scopes:  # and asks for workers' tokens as clusters start
        wire_worker_tokens(c, gateway)
        scopes.append(WORKER_TOKEN_SCOPE)
    register_role(c, {"name": role, "scopes": scopes, "services": [gateway.service_name]})
    return gateway


def managed_gateway_classes(c) -> list[type]:
    """What the managed gateway configures (``local_gateway_config.py``): dask-gateway-server's
    application, and the backend and authenticator it runs (:func:`gateway_class`). The hub
    passes it their sections and those of what each declares in ``classes``
    (:func:`~pangeohub.hubconfig.service_settings`), so an admin's own backend's settings
    (``c.PBSBackend``) reach it; never ``c.Proxy`` (JupyterHub's)."""
    from dask_gateway_server.app import DaskGateway

    return [
        DaskGateway,
        gateway_class(c, "backend_class", local_backend_class(c)),
        gateway_class(c, "authenticator_class", PangeoJupyterHubAuthenticator),
    ]


def gateway_class(c, trait: str, default: type | str) -> type:
    """The class the managed gateway runs as ``c.DaskGateway.<trait>``: the admin's (a class,
    or a "module.Class" string, imported here), else ``default`` (what
    ``local_gateway_config.py`` sets). One the hub cannot import stops the hub: the gateway
    runs on the hub's Python and could not import it either."""
    value = (c.get("DaskGateway") or {}).get(trait) or default
    if isinstance(value, type):
        return value
    try:
        found = import_item(str(value))
    except (ImportError, AttributeError, ValueError):
        found = None
    if not isinstance(found, type):
        raise ValueError(
            f"c.DaskGateway.{trait} is {str(value)[:200]!r}, which the hub cannot import: "
            "install its package where the hub runs, or give it as 'module.Class'."
        )
    return found


def clusters_stop_with_hub(c) -> bool:
    """Whether the managed gateway stops every cluster when the hub stops: the admin's
    ``stop_clusters_on_shutdown`` if set for the backend it runs (or a parent of it), else
    as servers do (``c.JupyterHub.cleanup_servers``: servers kept running across a restart
    keep their clusters too)."""
    for cls in gateway_class(c, "backend_class", local_backend_class(c)).__mro__:
        section = cls.__name__
        if section in c and "stop_clusters_on_shutdown" in c[section]:
            return bool(c[section].stop_clusters_on_shutdown)
    return bool(c.JupyterHub.get("cleanup_servers", True))


def wire_worker_tokens(c, gateway: GatewayService) -> None:
    """The hub's route for workers' tokens and the custom scope that may call it."""
    scopes = dict(c.JupyterHub.get("custom_scopes", {}) or {})
    scopes[WORKER_TOKEN_SCOPE] = {
        "description": "Make tokens for the Dask workers of users' running servers "
        f"(with the scopes {', '.join(gateway.worker_token_scopes)} at most)."
    }
    c.JupyterHub.custom_scopes = scopes
    handlers = [h for h in config_list(c, "extra_handlers") if h[1] is not WorkerTokenHandler]
    route = (WORKER_TOKEN_ROUTE, WorkerTokenHandler, {"gateway": gateway})
    c.JupyterHub.extra_handlers = [*handlers, route]


def gateway_server_images(c) -> list:
    """The admin's ``c.GatewayPolicy.server_images`` and the hub's profile images."""
    admins = list(c.GatewayPolicy.get("server_images", []) or [])
    return admins + [entry for entry in profile_images(c) if entry not in admins]
