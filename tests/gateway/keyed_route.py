"""What stands, behind the traefik stand-in, for a Kubernetes cluster's network path to its
schedulers: there their network policy admits only traefik, and no key is asked. This
one-machine gateway's schedulers ask for their cluster's key (pangeohub.dask_gate), so
this forwarder adds it, for HTTP and websockets, and changes nothing else."""

from __future__ import annotations

import asyncio
import threading

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from pangeohub.dask_gate import HEADER
from pangeohub.gateway.dashboard import cluster_key
from tests.k8s_fake.traefik import relay_websocket

_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}


class KeyedRoute:
    """Forward ``127.0.0.1:<port>`` to ``upstream``, adding ``cluster``'s key (hub ``secret``)."""

    def __init__(self, upstream: str, secret: str, cluster: str, port: int):
        self.upstream, self.port = upstream.rstrip("/"), port
        self.key = cluster_key(secret, cluster)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> KeyedRoute:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

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
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await relay_websocket(self.client, request, target, headers)
        async with self.client.request(
            request.method,
            target,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            out = CIMultiDict((k, v) for k, v in answer.headers.items() if k.lower() not in _HOP)
            return web.Response(status=answer.status, body=body, headers=out)
