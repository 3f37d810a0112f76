"""pangeohub's options and per-user limits on dask-gateway-server's Kubernetes backend.

Use in the dask-gateway Helm chart's ``gateway.extraConfig`` (deploy/dask-gateway-values.yaml)::

    c.DaskGateway.backend_class = "pangeohub.gateway.kubernetes.PangeoKubeBackend"

Besides the options, bounds and limits of :class:`~.backend.PangeoBackendMixin`:

- a user's workers are counted from the worker pods the controller runs for the
  gateway (watched here), and from the ``spec.replicas`` this backend wrote, never from
  what a scheduler reports;
- a cluster started from a hub server is owned by that server's pod (an
  ``ownerReference`` on its DaskCluster object) when they share a namespace, and by the
  server's record otherwise: deleting the pod (stop, cull, node loss) deletes the
  cluster, its scheduler and workers through Kubernetes' garbage collector (at once, or
  once the gateway sees the pod gone and deletes the record), with or without the hub;
- pods that cannot start say why (:mod:`.kube_pods`): a new cluster whose scheduler's
  image cannot be pulled or finds no room is deleted and ``GatewayCluster()`` raises
  the reason; workers that cannot start are removed and the next ``scale()`` says why;
  a create the API answers too slowly is abandoned and the object deleted when it
  appears;
- what the hub reported about each server is kept in a Secret in the clusters'
  namespace (:mod:`.kube_records`), so a restarted gateway still knows it; with the
  clusters in a namespace of their own, a cluster belongs to that record, which the
  gateway deletes once the server's pod is gone;
- each cluster gets network policies of its own (:mod:`.kube_netpol`): only its own pods,
  the gateway's proxy and the gateway reach its scheduler and workers;
- its grants on DaskClusters can be a Role in the clusters' namespace: it lists and
  watches them there only (:mod:`.kube_namespaced`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import time
from collections import OrderedDict

import aiohttp
from aiohttp import web
from dask_gateway_server import models
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.kubernetes import KubeBackend
from dask_gateway_server.backends.kubernetes.utils import Informer
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException
from traitlets import Bool, Unicode, default

from ..numbers import FiniteFloat
from ..pod_troubles import IMAGE, pod_trouble
from .backend import PangeoBackendMixin
from .kube_namespaced import NamespacedCustomObjects
from .kube_netpol import cluster_network_policies
from .kube_pods import start_failure_message, workers_removed_message
from .kube_records import ServerRecords
from .options import SERVER_OPTION
from .rounds import Rounds

WORKER_COMPONENT = "dask-worker"
SCHEDULER_COMPONENT = "dask-scheduler"
CLUSTER_LABEL = "gateway.dask.org/cluster"
COMPONENT_LABEL = "app.kubernetes.io/component"
_KEEP_FAILURES = 256  # start failures remembered for clients still waiting
_ABANDONED_FOR = 600.0  # seconds an abandoned create is watched for
# dask-gateway's controller counts a worker pod it created only once the pod has container
# statuses; one deleted before (unscheduled) holds that cluster's scaling until its
# expectations expire, after 600 s. A cluster whose stuck workers were removed is held
# at the rest for as long, and scale() says why.
CONTROLLER_STALL = 600.0
SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
_owner: contextvars.ContextVar[dict | None] = contextvars.ContextVar("owner", default=None)
_made: contextvars.ContextVar[list | None] = contextvars.ContextVar("made", default=None)


class PangeoKubeBackend(ServerRecords, PangeoBackendMixin, KubeBackend):
    """Dask clusters as pods, with pangeohub's options, bounds and per-user limits."""

    owned_by_server = Bool(
        True,
        help="""Make each cluster started from a hub server a dependent of that server's
        pod (ownerReference), so that Kubernetes deletes the cluster when the pod goes.
        Needs the hub to report its servers' pods (pangeohub's hub does) and the gateway
        to get pods in the servers' namespace. With the clusters in another namespace
        than the servers (owners must share the namespace), each cluster belongs to its
        server's record instead (a Secret in the clusters' namespace), and the gateway
        deletes the record, and with it the clusters, once the server's pod is gone
        (checked every orphan_check_period seconds and when the gateway starts).""",
    ).tag(config=True)

    gateway_namespace = Unicode(
        help="""The namespace of the dask-gateway chart's own pods (the gateway and
        traefik): each cluster's network policies admit them from there. Default: the
        gateway pod's own namespace (its service account's), or the clusters' namespace
        outside a pod.""",
    ).tag(config=True)

    @default("gateway_namespace")
    def _default_gateway_namespace(self):
        if os.path.exists(SERVICE_ACCOUNT_NAMESPACE):
            with open(SERVICE_ACCOUNT_NAMESPACE) as f:
                return f.read().strip()
        return self.clusters_namespace

    network_policies = Bool(
        True,
        help="""Give each cluster NetworkPolicies of its own, owned by its DaskCluster:
        only the cluster's own pods, the gateway's proxy (traefik) and the gateway reach
        its scheduler and workers (no other person's workers or servers, and dashboards
        only through traefik). Needs "create" on networkpolicies in the clusters'
        namespace (deploy/dask-gateway-rbac.yaml); a cluster whose policies cannot be made
        is not started. False: the clusters' pods take connections from anywhere the
        admin's own policies allow.""",
    ).tag(config=True)

    image_pull_timeout = FiniteFloat(
        30,
        min=0,
        help="""Seconds a scheduler's or worker's image may keep failing to pull before
        the gateway gives up on the pod: a new cluster is deleted and GatewayCluster()
        says why; workers are removed and the next scale() says why.""",
    ).tag(config=True)

    scheduling_timeout = FiniteFloat(
        300,
        min=0,
        help="""Seconds a scheduler or worker pod may wait for room in the cluster
        (PodScheduled=False, Unschedulable) before the gateway gives up on it, as for
        image_pull_timeout. With a cluster autoscaler, keep it above the time a new node
        takes to join.""",
    ).tag(config=True)

    k8s_api_timeout = FiniteFloat(
        10,
        min=0.1,
        help="""Seconds the gateway waits for the Kubernetes API while it creates a
        cluster; the user is told to try again, and a cluster object the API makes after
        that is deleted as soon as the gateway sees it.""",
    ).tag(config=True)

    @property
    def clusters_namespace(self) -> str:
        """The namespace the clusters run in (``KubeClusterConfig.namespace``)."""
        return self.cluster_config_class(parent=self).namespace

    @property
    def custom_client(self):
        return self._custom_client

    @custom_client.setter
    def custom_client(self, value):
        # upstream's DaskCluster informer, held to the clusters' namespace
        self._custom_client = NamespacedCustomObjects(value.api_client, self.clusters_namespace)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._troubles: dict[str, tuple[float, object]] = {}  # pod key -> (since, Trouble)
        self._start_failures: OrderedDict[str, str] = OrderedDict()  # cluster -> message
        self._short: dict[str, tuple[int, str, float]] = {}  # cluster -> (kept, why, until)
        self._abandoned: dict[str, float] = {}  # "namespace.name" -> watch until
        self.pod_informer: Informer | None = None  # the clusters' pods, from setup on
        # pods that cannot start, and abandoned creates: looked at a few times a timeout
        period = min(max(min(self.image_pull_timeout, self.scheduling_timeout) / 4, 0.2), 5)
        self._trouble_checks = Rounds(
            self._handle_troubles, period, self.log, "Handling pods that cannot start"
        )

    async def setup(self, app):
        await super().setup(app)
        self.networking_client = client.NetworkingV1Api(api_client=self.api_client)
        await self._load_server_records()
        self.pod_informer = Informer(
            parent=self,
            name="pod",
            client=self.core_client,
            # the clusters' namespace only: the gateway's Role grants no more
            method="list_namespaced_pod",
            method_kwargs=dict(
                namespace=self.clusters_namespace, label_selector=self.label_selector
            ),
            on_update=self._on_pod,
            on_delete=self._on_pod_gone,
        )
        await self.pod_informer.start()
        self._trouble_checks.start()
        self._start_server_pod_checks()

    async def cleanup(self):
        await self._trouble_checks.stop()
        await self._server_pod_checks.stop()
        if self.pod_informer is not None:
            await self.pod_informer.stop()
        await super().cleanup()

    # --- what counts against the limits -----------------------------------

    def _pods_of(self, cluster_name: str, component: str) -> list[dict]:
        informer = self.pod_informer
        if informer is None:
            return []
        name = cluster_name.split(".", 1)[-1]
        return [
            pod
            for pod in informer.cache.values()
            if (labels := pod["metadata"].get("labels") or {}).get(CLUSTER_LABEL) == name
            and labels.get(COMPONENT_LABEL) == component
        ]

    def started_workers(self, cluster) -> int:
        """Worker pods of ``cluster`` that have not finished (pending ones included)."""
        return sum(
            1
            for pod in self._pods_of(cluster.name, WORKER_COMPONENT)
            if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        )

    def accepted_workers(self, cluster) -> int:
        """The target this backend set (``spec.replicas``; it writes only checked values)."""
        obj = self.informer.get(cluster.name) if hasattr(self, "informer") else None
        replicas = ((obj or {}).get("spec") or {}).get("replicas", 0)
        stored = replicas if isinstance(replicas, int) else 0
        return max(super().accepted_workers(cluster), stored, 0)

    async def list_clusters(self, username=None, statuses=None):
        """Clusters given up on (failed start, abandoned create) are not listed."""
        clusters = await super().list_clusters(username=username, statuses=statuses)
        gone, abandoned = self._start_failures, self._abandoned
        return [c for c in clusters if c.name not in gone and c.name not in abandoned]

    # --- pods that cannot start ---------------------------------------------

    def _on_pod(self, pod, old=None):
        key = self.pod_informer.get_key(pod)
        trouble = pod_trouble(pod)
        if trouble is None:
            self._troubles.pop(key, None)
        elif self._troubles.get(key, (0, None))[1] != trouble:
            self._troubles[key] = (time.monotonic(), trouble)

    def _on_pod_gone(self, pod):
        self._troubles.pop(self.pod_informer.get_key(pod), None)

    async def _handle_troubles(self):
        await self._act_on_troubles()
        await self._delete_abandoned()

    async def _act_on_troubles(self):
        now = time.monotonic()
        expired: dict[tuple[str, str], list] = {}
        for key, (since, trouble) in list(self._troubles.items()):
            timeout = self.image_pull_timeout if trouble.kind == IMAGE else self.scheduling_timeout
            pod = self.pod_informer.get(key)
            if pod is None or now - since < timeout:
                continue
            labels = pod["metadata"].get("labels") or {}
            cluster = f"{pod['metadata']['namespace']}.{labels.get(CLUSTER_LABEL)}"
            component = labels.get(COMPONENT_LABEL)
            expired.setdefault((cluster, component), []).append((pod, trouble, now - since))
        for (cluster, component), pods in expired.items():
            if component == SCHEDULER_COMPONENT:
                await self._fail_start(cluster, *pods[0])
            elif component == WORKER_COMPONENT:
                await self._remove_workers(cluster, pods)

    async def _fail_start(self, cluster_name: str, pod: dict, trouble, waited: float):
        """Delete a new cluster whose scheduler cannot start; remember why for the user."""
        cluster = self.clusters.get(cluster_name)
        if cluster is None or cluster.status != models.ClusterStatus.PENDING:
            return
        message = start_failure_message(trouble, pod)
        self.log.info(
            "Cluster %s of %s could not start (%s after %.0f s): %s; deleting it",
            cluster_name,
            cluster.username,
            trouble.kind,
            waited,
            trouble.detail,
        )
        self._start_failures[cluster_name] = message
        while len(self._start_failures) > _KEEP_FAILURES:
            self._start_failures.popitem(last=False)
        await self._delete_cluster_object(cluster_name)
        self._troubles.pop(self.pod_informer.get_key(pod), None)

    async def _remove_workers(self, cluster_name: str, stuck: list):
        """Remove a cluster's workers that cannot start and hold it at the rest, until
        its user's next ``scale()``/``adapt()`` (which says why)."""
        cluster = self.clusters.get(cluster_name)
        if cluster is None or cluster.status != models.ClusterStatus.RUNNING:
            return
        # All its workers that cannot start go, not only the ones waiting longest.
        troubled = {key.split(".", 1)[1] for key in self._troubles}
        workers = [
            pod
            for pod in self._pods_of(cluster_name, WORKER_COMPONENT)
            if pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ]
        stuck_names = {pod["metadata"]["name"] for pod, _, _ in stuck}
        stuck_names |= {p["metadata"]["name"] for p in workers} & troubled
        kept = len(workers) - len(stuck_names & {p["metadata"]["name"] for p in workers})
        pod, trouble, waited = stuck[0]
        message = workers_removed_message(trouble, pod, len(stuck_names), kept)
        self.log.info(
            "%d workers of %s (%s) could not start after %.0f s (%s: %s); keeping %d",
            len(stuck_names),
            cluster_name,
            cluster.username,
            waited,
            trouble.kind,
            trouble.detail,
            kept,
        )
        self._short[cluster_name] = (kept, message, time.monotonic() + CONTROLLER_STALL)
        self._counts[cluster_name] = kept
        namespace, name = cluster_name.split(".", 1)
        await self._patch_replicas(namespace, name, kept)
        for pod_name in stuck_names:
            with contextlib.suppress(ApiException):
                await self.core_client.delete_namespaced_pod(
                    pod_name, namespace, grace_period_seconds=0, _request_timeout=10
                )
            self._troubles.pop(f"{namespace}.{pod_name}", None)
        with contextlib.suppress(Exception):  # its target too, or it asks for them again
            await super().forward_message_to_scheduler(cluster, {"op": "scale", "count": kept})

    async def _patch_replicas(self, namespace: str, name: str, count: int):
        await self.custom_client.patch_namespaced_custom_object(
            "gateway.dask.org",
            self.crd_version,
            namespace,
            "daskclusters",
            name,
            [{"op": "add", "path": "/spec/replicas", "value": count}],
            _request_timeout=10,
        )

    async def _delete_cluster_object(self, cluster_name: str) -> bool:
        """Delete a DaskCluster (its pods, secret and routes go with it); True once gone."""
        namespace, name = cluster_name.split(".", 1)
        try:
            await self.custom_client.delete_namespaced_custom_object(
                "gateway.dask.org",
                self.crd_version,
                namespace,
                "daskclusters",
                name,
                _request_timeout=10,
            )
        except ApiException as error:
            if error.status != 404:
                raise
        return True

    async def _delete_abandoned(self):
        now = time.monotonic()
        for cluster_name, until in list(self._abandoned.items()):
            if self.informer.get(cluster_name) is not None:
                self.log.info("Deleting %s: its creation was given up on", cluster_name)
                await self._delete_cluster_object(cluster_name)
            elif now > until:
                self._abandoned.pop(cluster_name, None)

    async def get_cluster(self, cluster_name, wait=False):
        cluster = await super().get_cluster(cluster_name, wait=wait)
        message = self._start_failures.get(cluster_name)
        if wait and message is not None:
            # GatewayCluster() waits here for its cluster to start: say why it did not.
            raise web.HTTPConflict(reason=message)
        return cluster

    def _held_at(self, cluster_name: str) -> tuple[int, str] | None:
        """(workers, why) a cluster whose workers could not start is held at, if it is."""
        short = self._short.get(cluster_name)
        if short is not None and time.monotonic() > short[2]:
            self._short.pop(cluster_name, None)
            return None
        return None if short is None else short[:2]

    async def forward_message_to_scheduler(self, cluster, msg):
        wanted = msg.get("count") if msg.get("op") == "scale" else msg.get("minimum")
        held = self._held_at(cluster.name) if msg.get("op") in ("scale", "adapt") else None
        if held is not None and isinstance(wanted, int) and wanted > held[0]:
            raise PublicException(held[1])
        return await super().forward_message_to_scheduler(cluster, msg)

    async def on_cluster_heartbeat(self, cluster_name, msg):
        held = self._held_at(cluster_name)
        count = msg.get("count")
        if held is not None and isinstance(count, int) and count > held[0]:
            msg = dict(msg, count=held[0])  # held at the workers that could start
        return await super().on_cluster_heartbeat(cluster_name, msg)

    # --- clusters owned by their server's pod -----------------------------

    async def start_cluster(self, user, cluster_options):
        made = []
        made_token = _made.set(made)
        try:
            token = _owner.set(await self._server_pod_owner(user.name, cluster_options))
            try:
                return await asyncio.wait_for(
                    self._start_isolated(user, cluster_options), self.k8s_api_timeout
                )
            finally:
                _owner.reset(token)
        except ApiException as error:
            self.log.warning("Creating %s's cluster failed: HTTP %s", user.name, error.status)
            if error.status == 403:
                reason = (
                    "the cluster refused the gateway permission to create it. This is a "
                    "problem with the hub's set-up; please tell a hub admin."
                )
            else:
                reason = (
                    f"the cluster answered with an error (HTTP {error.status}). Please try "
                    "again; if this keeps happening, tell a hub admin."
                )
            raise PublicException(f"Your Dask cluster could not be created: {reason}") from None
        except TimeoutError:
            for name in made:  # the API may still make it: delete it when it appears
                self._abandoned[name] = time.monotonic() + _ABANDONED_FOR
            self.log.warning(
                "Creating %s's cluster took over %g s; abandoned %s",
                user.name,
                self.k8s_api_timeout,
                made,
            )
            raise PublicException(
                "Your Dask cluster could not be created: the Kubernetes cluster did not "
                f"answer within {self.k8s_api_timeout:g} seconds. Please try again in a "
                "minute; if this keeps happening, tell a hub admin."
            ) from None
        except (aiohttp.ClientError, OSError) as error:
            self.log.warning("Creating %s's cluster failed: %r", user.name, error)
            raise PublicException(
                "Your Dask cluster could not be created: the gateway cannot reach the "
                "Kubernetes cluster right now. Please try again in a minute; if this keeps "
                "happening, tell a hub admin."
            ) from None
        finally:
            _made.reset(made_token)

    async def _start_isolated(self, user, cluster_options) -> str:
        """Make the cluster, then its network policies; a cluster without them is
        deleted again (the caller says why)."""
        cluster_name = await super().start_cluster(user, cluster_options)
        if not self.network_policies:
            return cluster_name
        namespace, name = cluster_name.split(".", 1)
        try:
            cluster = await self.custom_client.get_namespaced_custom_object(
                "gateway.dask.org", self.crd_version, namespace, "daskclusters", name
            )
            policies = cluster_network_policies(
                cluster, self.gateway_instance, self.common_labels, self.gateway_namespace
            )
            for policy in policies:
                await self.networking_client.create_namespaced_network_policy(namespace, policy)
        except Exception:
            with contextlib.suppress(Exception):
                await self._delete_cluster_object(cluster_name)
            raise
        return cluster_name

    async def _server_pod_owner(self, username: str, request) -> dict | None:
        """The ownerReference of a cluster started from the server named in the request:
        the server's pod when it shares the clusters' namespace, its record otherwise."""
        if not self.owned_by_server:
            return None
        server = (request or {}).get(SERVER_OPTION) if isinstance(request, dict) else None
        record = self.server_records.get(username, server or "") if server else None
        if not record or not record.get("pod"):
            return None
        namespace = record.get("namespace") or self.clusters_namespace
        try:
            uid = await self._pod_uid(username, server, record)
        except ApiException as error:
            uid, why = None, error.status
        else:
            why = 404
        if uid is None:
            self.log.warning(
                "Cannot read %s's server pod %s/%s (%s): the cluster is not tied to it",
                username,
                namespace,
                record["pod"],
                why,
            )
            return None
        if namespace == self.clusters_namespace:
            return {"apiVersion": "v1", "kind": "Pod", "name": record["pod"], "uid": uid}
        return await self._record_owner(username, server, record)

    def make_cluster_object(self, username, options, config):
        obj = super().make_cluster_object(username, options, config)
        made = _made.get()
        if made is not None:
            made.append(f"{config.namespace}.{obj['metadata']['name']}")
        owner = _owner.get()
        if owner is not None:
            obj["metadata"]["ownerReferences"] = [dict(owner)]
        return obj
