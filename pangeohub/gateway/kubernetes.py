"""pangeohub's options and per-user limits on dask-gateway-server's Kubernetes backend.

Use in the dask-gateway Helm chart's ``gateway.extraConfig`` (deploy/dask-gateway-values.yaml)::

    c.DaskGateway.backend_class = "pangeohub.gateway.kubernetes.PangeoKubeBackend"

Besides the options, bounds and limits of :class:`~.backend.PangeoBackendMixin`:

- a user's workers are counted from the worker pods the controller runs for the
  gateway (watched here), and from the ``spec.replicas`` this backend wrote, never from
  what a scheduler reports;
- a cluster started from a hub server is owned by that server's pod (an
  ``ownerReference`` on its DaskCluster object): deleting the pod (stop, cull, node
  loss) deletes the cluster, its scheduler and workers through Kubernetes' garbage
  collector, with or without the hub and the gateway.
"""

from __future__ import annotations

import contextvars

import aiohttp
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.kubernetes import KubeBackend
from dask_gateway_server.backends.kubernetes.utils import Informer
from kubernetes_asyncio.client.rest import ApiException
from traitlets import Bool

from .backend import PangeoBackendMixin
from .options import SERVER_OPTION

WORKER_COMPONENT = "dask-worker"
_owner: contextvars.ContextVar[dict | None] = contextvars.ContextVar("owner", default=None)


class PangeoKubeBackend(PangeoBackendMixin, KubeBackend):
    """Dask clusters as pods, with pangeohub's options, bounds and per-user limits."""

    owned_by_server = Bool(
        True,
        help="""Make each cluster started from a hub server a dependent of that server's
        pod (ownerReference), so that Kubernetes deletes the cluster when the pod goes.
        Needs the hub to report its servers' pods (pangeohub's hub does) and the gateway
        to read pods in the clusters' namespace.""",
    ).tag(config=True)

    async def setup(self, app):
        await super().setup(app)
        self.worker_informer = Informer(
            parent=self,
            name="worker",
            client=self.core_client,
            method="list_pod_for_all_namespaces",
            method_kwargs=dict(
                label_selector=f"{self.label_selector},app.kubernetes.io/component={WORKER_COMPONENT}"
            ),
            on_update=lambda pod, old=None: None,
            on_delete=lambda pod: None,
        )
        await self.worker_informer.start()

    async def cleanup(self):
        if hasattr(self, "worker_informer"):
            await self.worker_informer.stop()
        await super().cleanup()

    # --- what counts against the limits -----------------------------------

    def started_workers(self, cluster) -> int:
        """Worker pods of ``cluster`` that have not finished (pending ones included)."""
        informer = getattr(self, "worker_informer", None)
        if informer is None:
            return 0
        name = cluster.name.split(".", 1)[-1]
        return sum(
            1
            for pod in informer.cache.values()
            if pod["metadata"].get("labels", {}).get("gateway.dask.org/cluster") == name
            and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        )

    def accepted_workers(self, cluster) -> int:
        """The target this backend set (``spec.replicas``; it writes only checked values)."""
        obj = self.informer.get(cluster.name) if hasattr(self, "informer") else None
        replicas = ((obj or {}).get("spec") or {}).get("replicas", 0)
        stored = replicas if isinstance(replicas, int) else 0
        return max(super().accepted_workers(cluster), stored, 0)

    # --- clusters owned by their server's pod -----------------------------

    async def start_cluster(self, user, cluster_options):
        try:
            token = _owner.set(await self._server_pod_owner(user.name, cluster_options))
            try:
                return await super().start_cluster(user, cluster_options)
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
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            self.log.warning("Creating %s's cluster failed: %r", user.name, error)
            raise PublicException(
                "Your Dask cluster could not be created: the gateway cannot reach the "
                "Kubernetes cluster right now. Please try again in a minute; if this keeps "
                "happening, tell a hub admin."
            ) from None

    async def _server_pod_owner(self, username: str, request) -> dict | None:
        """The ownerReference to the pod of the server named in the request, if any."""
        if not self.owned_by_server:
            return None
        server = (request or {}).get(SERVER_OPTION) if isinstance(request, dict) else None
        record = self._servers.get(username, {}).get(server or "") if server else None
        if not record or not record.get("pod"):
            return None
        namespace = record.get("namespace") or self.cluster_config_class(parent=self).namespace
        try:
            pod = await self.core_client.read_namespaced_pod(record["pod"], namespace)
        except ApiException as error:
            self.log.warning(
                "Cannot read %s's server pod %s/%s (%s): the cluster is not tied to it",
                username,
                namespace,
                record["pod"],
                error.status,
            )
            return None
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.metadata.name,
            "uid": pod.metadata.uid,
            "namespace": namespace,
        }

    def make_cluster_object(self, username, options, config):
        obj = super().make_cluster_object(username, options, config)
        owner = _owner.get()
        if owner is not None:
            namespace = owner.pop("namespace")
            if namespace == config.namespace:  # owners must share the namespace
                obj["metadata"]["ownerReferences"] = [owner]
            else:
                self.log.warning(
                    "%s's server pod is in namespace %s, clusters in %s: not tied to it",
                    username,
                    namespace,
                    config.namespace,
                )
        return obj
