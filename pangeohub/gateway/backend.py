"""pangeohub's part of every Dask Gateway backend: options, limits, the hub's reports.

:class:`PangeoBackendMixin` goes in front of a dask-gateway-server backend. It takes
the cluster options from :class:`~.options.GatewayPolicy`, holds each user's clusters to
their limits (:mod:`.admission`), keeps what the hub reported about running servers
(:mod:`.server_records`), asks the hub for a cluster's workers' token
(:mod:`.worker_token_request`), serves the hub's routes (:mod:`.hub_routes`) and stops
clusters whose server is gone (:mod:`.orphans`). Each of those is made with the backend.
"""

from __future__ import annotations

import os
import sys

from aiohttp import web
from dask_gateway_server.backends.local import LocalClusterConfig, UnsafeLocalBackend
from dask_gateway_server.traitlets import Type
from traitlets import Bool, Instance, Unicode, default
from traitlets.config import LoggingConfigurable

from ..binder.image import python_of_image
from ..dask_gate import gate_environment
from ..environments.servers import environment_python
from ..environments.settings import Environments
from ..numbers import FiniteFloat
from ..state import StateDirectory
from .admission import Running, admit_cluster, admit_workers, headroom
from .dashboard import KEY_SECRET, cluster_key
from .hub_routes import HubRoutes
from .options import SERVER_OPTION, GatewayPolicy
from .orphans import OrphanReaper
from .proxy_order import ProxyAfterApiMixin
from .server_records import ServerRecordStore
from .worker_token_request import WorkerTokenRequests


class PangeoBackendMixin(LoggingConfigurable):
    """Cluster options from ``c.GatewayPolicy`` and per-user limits, for any backend."""

    # what it configures besides itself (the hub passes their sections to the gateway)
    classes = [GatewayPolicy, Environments]

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
        gateway's hub token to hold read:servers. On Kubernetes, also how often the
        gateway looks at the pods of the servers it keeps records of, and deletes the
        records (and the clusters they own) of those whose pod is gone.""",
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

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.server_records = ServerRecordStore(self.servers_file)
        self.hub_routes = HubRoutes(self)
        self.orphans = OrphanReaper(self)
        self.worker_tokens = WorkerTokenRequests(self)
        self._counts: dict[str, int] = {}  # cluster -> the worker target accepted
        # each user's groups, from their last cluster request (scale and heartbeat
        # requests carry no user model)
        self._groups: dict[str, set[str]] = {}

    # --- options -----------------------------------------------------------

    async def get_cluster_options(self, user):
        servers = self.server_records.servers(user.name)
        try:
            return await self.policy.cluster_options(
                user,
                server_images=[s["image"] for s in servers.values() if s.get("image")],
                server_environments={k: s.get("environment", {}) for k, s in servers.items()},
            )
        except ValueError as error:
            raise web.HTTPUnprocessableEntity(reason=str(error)) from None

    async def process_cluster_options(self, user, request):
        """The options and configuration of a cluster ``user`` asks for, once admitted
        beside their running clusters (upstream's ``start_cluster`` asks for them once,
        before it makes anything)."""
        self._groups[user.name] = set(user.groups)
        options, config = await super().process_cluster_options(user, request)
        active = self._running(await self.list_clusters(username=user.name))
        admit_cluster(self.policy.limits_for(user.groups), config.to_dict(), active)
        return options, config

    # --- what a cluster counts for -----------------------------------------

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

    def user_groups(self, username: str) -> set[str]:
        """``username``'s groups, as their last cluster request said."""
        return self._groups.get(username, set())

    def _running(self, clusters) -> list[Running]:
        return [Running(c.name, self.worker_count(c), c.config) for c in clusters]

    async def _others(self, cluster) -> list[Running]:
        """The user's running clusters besides ``cluster``."""
        clusters = await self.list_clusters(username=cluster.username)
        return self._running([c for c in clusters if c.name != cluster.name])

    # --- upstream's calls ----------------------------------------------------

    async def start_cluster(self, user, cluster_options):
        await self.worker_tokens.ensure(user.name, (cluster_options or {}).get(SERVER_OPTION))
        return await super().start_cluster(user, cluster_options)

    async def forward_message_to_scheduler(self, cluster, msg):
        if msg.get("op") in ("scale", "adapt"):
            limits = self.policy.limits_for(self.user_groups(cluster.username))
            others = await self._others(cluster)
        if msg.get("op") == "scale":
            admit_workers(limits, cluster.config, others, msg["count"], "Scaling to")
            self._counts[cluster.name] = msg["count"]
        elif msg.get("op") == "adapt":
            room, _ = headroom(limits, cluster.config, others)
            minimum = msg.get("minimum") or 0
            admit_workers(limits, cluster.config, others, minimum, "Adapting with minimum")
            maximum = msg.get("maximum")
            if room != float("inf") and (maximum is None or maximum > room):
                msg = dict(msg, maximum=int(room))
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name, msg):
        cluster = await self.get_cluster(cluster_name)
        if cluster is not None:
            limits = self.policy.limits_for(self.user_groups(cluster.username))
            room, limit = headroom(limits, cluster.config, await self._others(cluster))
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

    async def setup(self, app):
        await super().setup(app)
        self.hub_routes.add_to(app)
        self.orphans.start()

    async def cleanup(self):
        await self.orphans.stop()
        await super().cleanup()

    # --- what a backend may keep beyond its memory -------------------------

    async def server_recorded(self, username: str, server: str, record: dict) -> None:
        """A backend may keep ``record`` beyond its memory (Kubernetes: a Secret)."""

    async def server_forgotten(self, username: str, server: str) -> None:
        """The hub stopped ``server``: forget what ``server_recorded`` kept."""


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

    classes = [*PangeoBackendMixin.classes, PangeoLocalClusterConfig]

    def _in_image(self, cluster, command: list[str]) -> list[str]:
        image = getattr(cluster.config, "image", "")
        python = python_of_image(image) or environment_python(image, self.config)
        if python and command and command[0] == sys.executable:
            return [python, *command[1:]]
        return command

    def get_scheduler_command(self, cluster):
        return self._in_image(cluster, super().get_scheduler_command(cluster))

    dashboards_guarded = Bool(
        False,
        help="""Whether each cluster's scheduler and workers answer HTTP (the dashboard,
        metrics, health) only to requests carrying the cluster's key, which only the
        dashboard guard adds (pangeohub.dask_gate): their loopback ports are then of no
        use to anyone else on the machine. The hub sets it when the guard is on
        (c.DashboardGuard.enabled); False leaves them open to every local account.""",
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # the hub's secret each cluster's gate key is derived from, read once
        state = StateDirectory.from_env()
        self._gate_secret = state.secret(KEY_SECRET) if self.dashboards_guarded else None

    def get_scheduler_env(self, cluster):
        return self._behind_gate(super().get_scheduler_env(cluster), cluster, "scheduler")

    def get_worker_env(self, cluster):
        return self._behind_gate(super().get_worker_env(cluster), cluster, "worker")

    def _behind_gate(self, env: dict, cluster, node: str) -> dict:
        if self._gate_secret is None:
            return env
        return gate_environment(env, node, cluster_key(self._gate_secret, cluster.name))

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
