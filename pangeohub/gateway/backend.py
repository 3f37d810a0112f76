"""Per-user limits across all of a user's clusters, and the hub's stop route.

:class:`PangeoBackendMixin` goes in front of a dask-gateway-server backend. It takes
the cluster options from :class:`~.options.GatewayPolicy`, refuses a new cluster, a
``scale`` or an ``adapt(minimum=...)`` that would take the user past a limit (with a
message naming the limit and what they have running), caps what an adaptive or
misbehaving scheduler asks for at the same limits, and serves
``POST /api/pangeohub/stop-server-clusters`` for the hub's post-stop hook.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
import os
import sys
import time
from urllib.parse import quote, unquote

import aiohttp
from aiohttp import web
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.local import LocalClusterConfig, UnsafeLocalBackend
from dask_gateway_server.traitlets import Type
from prometheus_client import CollectorRegistry, Gauge
from traitlets import Instance, Unicode, default
from traitlets.config import LoggingConfigurable

from ..metrics import exposition
from ..numbers import FiniteFloat
from ..policy import format_bytes
from ..state import write_private
from .options import SERVER_OPTION, GatewayPolicy, describe_usage, plural
from .proxy_order import ProxyAfterApiMixin

STOP_ROUTE = "/api/pangeohub/stop-server-clusters"
SERVER_ROUTE = "/api/pangeohub/server-started"
METRICS_ROUTE = "/api/pangeohub/metrics"
# the hub's route for a server's workers' token, under $JUPYTERHUB_API_URL (.worker_tokens)
WORKER_TOKEN_API = "/pangeohub/dask-worker-token"
TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"
HUB_TIMEOUT = 10  # seconds a cluster's start waits for the hub to make its workers' token


class PangeoBackendMixin(LoggingConfigurable):
    """Cluster options from ``c.GatewayPolicy`` and per-user limits, for any backend."""

    policy = Instance(GatewayPolicy)

    @default("policy")
    def _default_policy(self):
        return GatewayPolicy(parent=self)

    hub_service_token = Unicode(
        help="""Token the hub presents on pangeohub's routes (a server started, stop a
        server's clusters): the gateway's own hub API token. Default:
        $JUPYTERHUB_API_TOKEN. Empty disables the routes.""",
    ).tag(config=True)

    @default("hub_service_token")
    def _default_hub_service_token(self):
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    orphan_check_period = FiniteFloat(
        300,
        min=0,
        help="""Seconds between checks that stop clusters whose hub server is no longer
        running (e.g. it stopped while the gateway was down); 0: never. Needs the
        gateway's hub token to hold read:servers.""",
    ).tag(config=True)
    hub_api_url = Unicode(help="The hub's API URL. Default: $JUPYTERHUB_API_URL.").tag(config=True)

    @default("hub_api_url")
    def _default_hub_api_url(self):
        return os.environ.get("JUPYTERHUB_API_URL", "")

    metrics_token = Unicode(
        "",
        help="""Token Prometheus presents (``Authorization: Bearer ...``) to read
        ``/api/pangeohub/metrics``: clusters, workers and cores by user and by group. The
        metrics name users, so the route answers only with this token; empty: no metrics.""",
    ).tag(config=True)

    servers_file = Unicode(
        "",
        help="""Where what the hub reported about users' running servers (image, workers'
        environment) is kept across restarts of the gateway: one file (0600) per user in
        the directory ``<servers_file>.d``, so a server's start rewrites only its user's
        file (a single file at this path, as earlier versions kept, is read once and split
        up); empty: memory only.""",
    ).tag(config=True)

    # --- options and usage -------------------------------------------------

    async def get_cluster_options(self, user):
        servers = self._servers.get(user.name, {})
        try:
            return await self._cluster_options(user, servers)
        except ValueError as error:
            raise web.HTTPUnprocessableEntity(reason=str(error)) from None

    async def _cluster_options(self, user, servers):
        return await self.policy.cluster_options(
            user,
            server_images=[s["image"] for s in servers.values() if s.get("image")],
            server_environments={k: s.get("environment", {}) for k, s in servers.items()},
        )

    @property
    def _servers(self) -> dict[str, dict[str, dict]]:
        """user -> server tag -> {"image", "environment"}, as the hub reported them."""
        if not hasattr(self, "_pangeo_servers"):
            self._pangeo_servers = self._load_servers()
            if self.servers_file and os.path.isfile(self.servers_file):  # split it up
                for username in self._pangeo_servers:
                    self._save_servers(username)
                os.remove(self.servers_file)
        return self._pangeo_servers

    def _servers_dir(self) -> str:
        return self.servers_file + ".d"

    def _load_servers(self) -> dict[str, dict[str, dict]]:
        if not self.servers_file:
            return {}
        servers: dict[str, dict[str, dict]] = {}
        if os.path.isfile(self.servers_file):  # an earlier version's single file
            with open(self.servers_file) as f:
                servers = json.load(f)
        directory = self._servers_dir()
        for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if entry.endswith(".json"):
                with open(os.path.join(directory, entry)) as f:
                    servers[unquote(entry[: -len(".json")])] = json.load(f)
        return servers

    def _save_servers(self, username: str) -> None:
        """Write ``username``'s records (and only theirs); none left: remove their file."""
        if not self.servers_file:
            return
        os.makedirs(self._servers_dir(), mode=0o700, exist_ok=True)
        path = os.path.join(self._servers_dir(), quote(username, safe="") + ".json")
        records = self._servers.get(username)
        if not records:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return
        write_private(path, json.dumps(records))

    @property
    def _counts(self) -> dict[str, int]:
        if not hasattr(self, "_pangeo_counts"):
            self._pangeo_counts = {}
        return self._pangeo_counts

    def worker_count(self, cluster) -> int:
        """Workers ``cluster`` counts for against the user's limits: the most of the
        workers this backend runs for it and the target it accepted (a ``scale`` it
        allowed, or a heartbeat's count after capping at the limits). Never a count a
        scheduler reports unchecked: a user controls their scheduler and its token."""
        return max(self.started_workers(cluster), self.accepted_workers(cluster))

    def accepted_workers(self, cluster) -> int:
        """The worker target this backend accepted for ``cluster`` (0 if none)."""
        return max(self._counts.get(cluster.name, 0), 0)

    def started_workers(self, cluster) -> int:
        """Workers this backend started (or is starting) for ``cluster``, from its own
        records: the database of a database backend; other backends override it."""
        db = getattr(self, "db", None)
        stored = db.get_cluster(cluster.name) if db is not None else None
        return len(stored.active_workers()) if stored is not None else 0

    @staticmethod
    def usage(config, workers: int) -> tuple[float, int]:
        """Cores and bytes a cluster with ``workers`` workers takes (scheduler included)."""
        cores = config["scheduler_cores"] + workers * config["worker_cores"]
        memory = config["scheduler_memory"] + workers * config["worker_memory"]
        return cores, memory

    async def _active(self, username):
        return await self.list_clusters(username=username)

    def _running_summary(self, clusters, other: bool = False) -> str:
        """What the user has running, and what to do about it."""
        if not clusters:
            return "You have no other clusters running."
        parts, total = [], [0, 0.0, 0]
        for c in clusters:
            n = self.worker_count(c)
            cores, memory = self.usage(c.config, n)
            total = [total[0] + n, total[1] + cores, total[2] + memory]
            parts.append(f"{c.name} ({describe_usage(n, cores, memory)})")
        what = plural(len(clusters), "other running cluster" if other else "running cluster")
        verb = "uses" if len(clusters) == 1 else "use"
        return (
            f"Your {what} {verb} {describe_usage(*total)}: "
            + "; ".join(parts)
            + ". Shut one down (cluster.shutdown() or Gateway().stop_cluster(name)) "
            "or scale it down, then try again."
        )

    def _headroom(self, limits, config, others) -> tuple[int | float, str]:
        """Most workers a cluster with ``config`` may have, and the binding limit."""
        used_workers = sum(self.worker_count(c) for c in others)
        used_cores = used_memory = 0
        for c in others:
            cores, memory = self.usage(c.config, self.worker_count(c))
            used_cores += cores
            used_memory += memory
        room = [(math.inf, "")]
        if limits.workers is not None:
            room.append((limits.workers - used_workers, f"{limits.workers} workers"))
        if limits.cores is not None:
            left = limits.cores - used_cores - config["scheduler_cores"]
            room.append((math.floor(left / config["worker_cores"]), f"{limits.cores:g} cores"))
        if limits.memory is not None:
            left = limits.memory - used_memory - config["scheduler_memory"]
            room.append((left // config["worker_memory"], format_bytes(limits.memory)))
        return min(room, key=lambda r: r[0])

    # --- refusals ----------------------------------------------------------

    async def start_cluster(self, user, cluster_options):
        await self._ensure_worker_token(user.name, (cluster_options or {}).get(SERVER_OPTION))
        prepared = await self.process_cluster_options(user, cluster_options)
        config = prepared[1]
        limits = self.policy.limits_for(user.groups)
        active = await self._active(user.name)
        if limits.clusters is not None and len(active) >= limits.clusters:
            raise PublicException(
                f"You may run at most {limits.clusters} Dask clusters at once. "
                + self._running_summary(active)
            )
        room, limit = self._headroom(limits, config.to_dict(), active)
        if room < 0:
            raise PublicException(
                f"A new cluster's scheduler would take you past your limit of {limit}. "
                + self._running_summary(active)
            )
        # Reuse the options just processed (environment hooks may mint credentials).
        self._prepared[id(cluster_options)] = prepared
        try:
            return await super().start_cluster(user, cluster_options)
        finally:
            self._prepared.pop(id(cluster_options), None)

    async def _ensure_worker_token(self, username: str, server) -> None:
        """Put a token for the workers in the record of the server a cluster starts from,
        asked from the hub when the record has none or half its lifetime is gone (the
        hub makes none at a server's start). Without one the cluster still starts, and
        its workers have no token (e.g. no scratch credentials); the log says why."""
        record = self._servers.get(username, {}).get(server if isinstance(server, str) else "")
        if not record or not record.get("worker_token"):
            return  # not one of the user's running servers, or the hub gives no token
        left = record.get("token_expires", 0) - time.time()
        if TOKEN_VARIABLE in record["environment"] and left > record.get("token_lifetime", 0) / 2:
            return
        url = self.hub_api_url.rstrip("/") + WORKER_TOKEN_API
        headers = {"Authorization": f"token {self.hub_service_token}"}
        try:
            async with self.session.post(
                url,
                json={"user": username, "server": server},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=HUB_TIMEOUT),
            ) as response:
                if response.status != 201:
                    self.log.warning(
                        "The hub answered %d for the workers' token of %s's server %s",
                        response.status,
                        username,
                        server,
                    )
                    return
                answer = await response.json()
            token, lifetime = str(answer["token"]), float(answer["expires_in"])
        except Exception as error:  # the hub unreachable, or a reply without a token
            self.log.warning(
                "No workers' token for %s's server %s (%s)", username, server, type(error).__name__
            )
            return
        record["environment"][TOKEN_VARIABLE] = token
        record.update(token_expires=time.time() + lifetime, token_lifetime=lifetime)
        self._save_servers(username)
        await self.server_recorded(username, server, record)

    async def _check_workers(self, cluster, wanted: int, what: str) -> int:
        limits = self.policy.limits_for(await self._user_groups(cluster.username))
        others = [c for c in await self._active(cluster.username) if c.name != cluster.name]
        room, limit = self._headroom(limits, cluster.config, others)
        if wanted > room:
            raise PublicException(
                f"{what} {plural(wanted, 'worker')} would take you past your limit of "
                f"{limit} (at most {plural(max(int(room), 0), 'worker')} for this cluster now). "
                + self._running_summary(others, other=True)
            )
        return wanted

    async def _user_groups(self, username) -> set[str]:
        return self._groups.get(username, set())

    @property
    def _groups(self) -> dict[str, set[str]]:
        if not hasattr(self, "_pangeo_groups"):
            self._pangeo_groups = {}
        return self._pangeo_groups

    @property
    def _prepared(self) -> dict:
        if not hasattr(self, "_pangeo_prepared"):
            self._pangeo_prepared = {}
        return self._pangeo_prepared

    async def process_cluster_options(self, user, request):
        prepared = self._prepared.get(id(request))
        if prepared is not None:
            return prepared
        # Remember each user's groups: scale and heartbeat requests carry no user model.
        self._groups[user.name] = set(user.groups)
        return await super().process_cluster_options(user, request)

    async def forward_message_to_scheduler(self, cluster, msg):
        if msg.get("op") == "scale":
            await self._check_workers(cluster, msg["count"], "Scaling to")
            self._counts[cluster.name] = msg["count"]
        elif msg.get("op") == "adapt":
            limits = self.policy.limits_for(await self._user_groups(cluster.username))
            others = [c for c in await self._active(cluster.username) if c.name != cluster.name]
            room, _ = self._headroom(limits, cluster.config, others)
            await self._check_workers(cluster, msg.get("minimum") or 0, "Adapting with minimum")
            maximum = msg.get("maximum")
            if room != math.inf and (maximum is None or maximum > room):
                msg = dict(msg, maximum=int(room))
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name, msg):
        cluster = await self.get_cluster(cluster_name)
        if cluster is not None:
            limits = self.policy.limits_for(await self._user_groups(cluster.username))
            others = [c for c in await self._active(cluster.username) if c.name != cluster_name]
            room, limit = self._headroom(limits, cluster.config, others)
            count = msg.get("count")
            if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                # Only a scheduler a user tampered with sends this: ask for no workers.
                self.log.warning(
                    "Cluster %s sent a heartbeat with count %r; taken as 0", cluster_name, count
                )
                msg = dict(msg, count=0)
            if msg["count"] > room:
                self.log.info(
                    "Cluster %s asked for %d workers; capped at %d (limit of %s for %s)",
                    cluster_name,
                    msg["count"],
                    max(int(room), 0),
                    limit,
                    cluster.username,
                )
                msg = dict(msg, count=max(int(room), 0))
            self._counts[cluster_name] = msg["count"]
        return await super().on_cluster_heartbeat(cluster_name, msg)

    # --- the hub's routes ---------------------------------------------------

    async def setup(self, app):
        await super().setup(app)
        app.router.add_post(STOP_ROUTE, self._stop_server_clusters)
        app.router.add_post(SERVER_ROUTE, self._record_server)
        app.router.add_get(METRICS_ROUTE, self._metrics)
        if self.orphan_check_period > 0 and self.hub_api_url and self.hub_service_token:
            self._orphan_task = asyncio.ensure_future(self._orphan_loop())

    async def cleanup(self):
        task = getattr(self, "_orphan_task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await super().cleanup()

    async def _orphan_loop(self):
        await asyncio.sleep(min(self.orphan_check_period, 30))
        while True:
            try:
                await self.stop_orphaned_clusters()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.log.warning("Checking for orphaned clusters failed: %r", error)
            await asyncio.sleep(self.orphan_check_period)

    async def _running_servers(self, username: str) -> set[str] | None:
        """Tags of ``username``'s servers the hub has (None: the hub did not say)."""
        url = f"{self.hub_api_url.rstrip('/')}/users/{quote(username, safe='')}"
        headers = {"Authorization": f"token {self.hub_service_token}"}
        async with self.session.get(url, headers=headers) as response:
            if response.status == 404:
                return set()
            if response.status != 200:
                self.log.warning("The hub answered %d for %s's servers", response.status, username)
                return None
            servers = (await response.json()).get("servers")
        if servers is None:
            self.log.warning("The gateway's hub token cannot read servers (read:servers)")
            return None
        return {"/" + name for name in servers}

    async def stop_orphaned_clusters(self) -> list[str]:
        """Stop the clusters whose hub server is no longer running."""
        tagged: dict[str, list] = {}
        for cluster in await self.list_clusters():
            server = (cluster.options or {}).get(SERVER_OPTION)
            if server:
                tagged.setdefault(cluster.username, []).append((cluster, server))
        stopped = []
        for username, clusters in tagged.items():
            running = await self._running_servers(username)
            if running is None:
                continue
            for cluster, server in clusters:
                if server not in running:
                    self.log.info("Stopping %s: its server %s is gone", cluster.name, server)
                    await self.stop_cluster(cluster.name)
                    stopped.append(cluster.name)
        return stopped

    async def _hub_request(self, request, *keys) -> list | web.Response:
        """The ``keys`` of a JSON body sent by the hub, or the error response."""
        auth = request.headers.get("Authorization", "")
        token = auth[len("token ") :] if auth.startswith("token ") else ""
        if not (self.hub_service_token and hmac.compare_digest(token, self.hub_service_token)):
            return web.json_response({"error": "Only the hub may call this."}, status=403)
        try:
            body = await request.json()
            return [body[k] if k == "environment" else str(body[k]) for k in keys]
        except Exception:
            return web.json_response({"error": f"Send a JSON object with {keys}."}, status=400)

    async def _metrics(self, request):
        """Running clusters, their workers and cores, by user and by group (Prometheus)."""
        auth = request.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        if not self.metrics_token:
            return web.json_response({"error": "Metrics are off (metrics_token)."}, status=404)
        if not hmac.compare_digest(token, self.metrics_token):
            return web.json_response({"error": "Send the metrics token."}, status=403)
        body, content_type = cluster_metrics(
            [
                (c.username, self._groups.get(c.username, set()), self.worker_count(c), c.config)
                for c in await self.list_clusters()
            ]
        )
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _record_server(self, request):
        """The hub reports a server that started: its image (the user's workers may run
        it), the environment for the workers of clusters started from it and, on
        Kubernetes, its pod ("pod", "namespace")."""
        values = await self._hub_request(request, "user", "server", "image", "environment")
        if isinstance(values, web.Response):
            return values
        username, server, image, environment = values
        environment = {str(k): str(v) for k, v in dict(environment or {}).items()}
        record = {"image": image, "environment": environment}
        body = await request.json()
        if body.get("worker_token") is True:  # asked from the hub as a cluster starts
            record["worker_token"] = True
        for key in ("pod", "namespace"):  # the server's pod, on Kubernetes
            if isinstance(body.get(key), str) and body[key]:
                record[key] = body[key]
        self._servers.setdefault(username, {})[server] = record
        self._save_servers(username)
        await self.server_recorded(username, server, record)
        return web.json_response({"ok": True})

    async def server_recorded(self, username: str, server: str, record: dict) -> None:
        """A backend may keep ``record`` beyond its memory (Kubernetes: a Secret)."""

    async def server_forgotten(self, username: str, server: str) -> None:
        """The hub stopped ``server``: forget what ``server_recorded`` kept."""

    async def _stop_server_clusters(self, request):
        """Stop a user's clusters tagged with a server; only the hub may call it."""
        values = await self._hub_request(request, "user", "server")
        if isinstance(values, web.Response):
            return values
        username, server = values
        if self._servers.get(username, {}).pop(server, None) is not None:
            self._save_servers(username)
            await self.server_forgotten(username, server)
        stopped = []
        for cluster in await self._active(username):
            if server and (cluster.options or {}).get(SERVER_OPTION) == server:
                await self.stop_cluster(cluster.name)
                stopped.append(cluster.name)
        if stopped:
            self.log.info("Stopping %s's clusters of server %s: %s", username, server, stopped)
        return web.json_response({"stopped": stopped})


def cluster_metrics(clusters: list[tuple[str, set[str], int, dict]]) -> tuple[bytes, str]:
    """Prometheus text for (user, groups, workers, cluster config) of each running cluster."""
    registry = CollectorRegistry()
    gauges = {
        (scope, what): Gauge(
            f"pangeohub_dask_{what}_by_{scope}",
            f"Running Dask Gateway {what} by {scope}"
            + (" (a cluster counts in each of its user's groups)." if scope == "group" else "."),
            [scope],
            registry=registry,
        )
        for scope in ("user", "group")
        for what in ("clusters", "workers", "cores")
    }
    for user, groups, workers, config in clusters:
        cores = config.get("scheduler_cores", 0) + workers * config.get("worker_cores", 0)
        for scope, keys in (("user", [user]), ("group", sorted(groups) or ["none"])):
            for key in keys:
                gauges[scope, "clusters"].labels(key).inc()
                gauges[scope, "workers"].labels(key).inc(workers)
                gauges[scope, "cores"].labels(key).inc(cores)
    return exposition(registry)


class PangeoLocalClusterConfig(LocalClusterConfig):
    """Local cluster config that also records the image (workers run the gateway's
    own Python; the image is passed on as ``JUPYTER_IMAGE_SPEC``)."""

    image = Unicode("", help="The image the user's workers run (recorded locally).").tag(
        config=True
    )


class PangeoLocalBackend(ProxyAfterApiMixin, PangeoBackendMixin, UnsafeLocalBackend):
    """Local processes as the gateway's own user, with pangeohub's options and limits
    (its proxy started once its API listens: :mod:`.proxy_order`).

    A cluster whose image is a server's environment (pangeohub.environments) or a
    launched repository's (pangeohub.binder) runs its scheduler and workers on that
    environment's Python."""

    def _in_image(self, cluster, command: list[str]) -> list[str]:
        from ..binder.server import python_of_image
        from ..environments.servers import environment_python

        image = getattr(cluster.config, "image", "")
        python = python_of_image(image) or environment_python(image, self.config)
        if python and command and command[0] == sys.executable:
            return [python, *command[1:]]
        return command

    def get_scheduler_command(self, cluster):
        return self._in_image(cluster, super().get_scheduler_command(cluster))

    def get_worker_command(self, cluster, worker_name, scheduler_address=None):
        command = super().get_worker_command(cluster, worker_name, scheduler_address)
        return self._in_image(cluster, command)

    cluster_config_class = Type(
        "pangeohub.gateway.backend.PangeoLocalClusterConfig",
        klass="dask_gateway_server.backends.base.ClusterConfig",
        help="The cluster config class to use.",
        config=True,
    )


__all__ = ["PangeoBackendMixin", "PangeoLocalBackend", "PangeoLocalClusterConfig"]
