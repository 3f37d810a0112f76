"""The gateway's routes for the hub and for Prometheus, each with its own token check.

- ``POST /api/pangeohub/server-started``: the hub reports a server that started (its
  image, its workers' environment, on Kubernetes its pod).
- ``POST /api/pangeohub/stop-server-clusters``: the hub's post-stop hook stops the
  clusters started from a server.
- ``GET /api/pangeohub/metrics``: clusters, workers and cores by user and by group,
  only with ``metrics_token`` (the metrics name users).

The hub's routes answer only the gateway's own hub token (``hub_service_token``).
"""

from __future__ import annotations

import hmac

from aiohttp import web

from .cluster_metrics import cluster_metrics
from .options import SERVER_OPTION

STOP_ROUTE = "/api/pangeohub/stop-server-clusters"
SERVER_ROUTE = "/api/pangeohub/server-started"
METRICS_ROUTE = "/api/pangeohub/metrics"


class HubRoutes:
    """The routes of one backend (a :class:`~.backend.PangeoBackendMixin`)."""

    def __init__(self, backend):
        self.backend = backend

    def add_to(self, app: web.Application) -> None:
        app.router.add_post(STOP_ROUTE, self.stop_server_clusters)
        app.router.add_post(SERVER_ROUTE, self.record_server)
        app.router.add_get(METRICS_ROUTE, self.metrics)

    async def _hub_request(self, request, *keys) -> list | web.Response:
        """The ``keys`` of a JSON body sent by the hub, or the error response."""
        expected = self.backend.hub_service_token
        auth = request.headers.get("Authorization", "")
        token = auth[len("token ") :] if auth.startswith("token ") else ""
        if not (expected and hmac.compare_digest(token, expected)):
            return web.json_response({"error": "Only the hub may call this."}, status=403)
        try:
            body = await request.json()
            return [body[k] if k == "environment" else str(body[k]) for k in keys]
        except Exception:
            return web.json_response({"error": f"Send a JSON object with {keys}."}, status=400)

    async def metrics(self, request):
        """Running clusters, their workers and cores, by user and by group (Prometheus)."""
        backend = self.backend
        auth = request.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1].strip() if " " in auth else ""
        if not backend.metrics_token:
            return web.json_response({"error": "Metrics are off (metrics_token)."}, status=404)
        if not hmac.compare_digest(token, backend.metrics_token):
            return web.json_response({"error": "Send the metrics token."}, status=403)
        body, content_type = cluster_metrics(
            [
                (c.username, backend.user_groups(c.username), backend.worker_count(c), c.config)
                for c in await backend.list_clusters()
            ]
        )
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def record_server(self, request):
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
        self.backend.server_records.put(username, server, record)
        await self.backend.server_recorded(username, server, record)
        return web.json_response({"ok": True})

    async def stop_server_clusters(self, request):
        """Stop a user's clusters tagged with a server; only the hub may call it."""
        backend = self.backend
        values = await self._hub_request(request, "user", "server")
        if isinstance(values, web.Response):
            return values
        username, server = values
        if backend.server_records.pop(username, server) is not None:
            await backend.server_forgotten(username, server)
        stopped = []
        for cluster in await backend.list_clusters(username=username):
            if server and (cluster.options or {}).get(SERVER_OPTION) == server:
                await backend.stop_cluster(cluster.name)
                stopped.append(cluster.name)
        if stopped:
            backend.log.info("Stopping %s's clusters of server %s: %s", username, server, stopped)
        return web.json_response({"stopped": stopped})
