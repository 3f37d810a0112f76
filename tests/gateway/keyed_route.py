"""What stands, behind the traefik stand-in, for a Kubernetes cluster's network path to its
schedulers: there their network policy admits only traefik, and no key is asked. This
one-machine gateway's schedulers ask for their cluster's key (pangeohub.dask_gate), so
this forwarder adds it, for HTTP and websockets, and changes nothing else."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from pangeohub.dask_gate import HEADER
from pangeohub.gateway.dashboard import cluster_key
from tests.background_loop import BackgroundLoop
from tests.k8s_fake.traefik import relay

_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}


class KeyedRoute(BackgroundLoop):
    """Forward ``127.0.0.1:<port>`` to ``upstream``, adding ``cluster``'s key (hub ``secret``)."""

    def __init__(self, upstream: str, secret: str, cluster: str, port: int):
        self.upstream, self.port = upstream.rstrip("/"), port
        self.key = cluster_key(secret, cluster)
        super().__init__()

    async def _start(self) -> None:
        self.client = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.client.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        headers[HEADER] = self.key
        target = f"{self.upstream}{request.rel_url}"
        return await relay(self.client, request, target, headers)
