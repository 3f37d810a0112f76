"""The local gateway's proxy: started once the gateway's API listens, stopped before it.

dask-gateway-server's local backends start their proxy (dask-gateway-proxy, a child
process that reads its routes from the gateway's API) while the backend sets up, before
the API listens, so every start logs "Unexpected failure fetching routing table ...
connection refused"; and at shutdown the API stops first, so every stop logs
"Unexpected failure fetching routing events". No setting orders them (the proxy is made
in ``DBBackendBase.setup``), hence this mixin around the backend's own steps: it asks the
proxy not to start its process during set-up (``Proxy.externally_managed``, for that
moment only), starts it, and its watchdog, once the API answers connections, and stops
it when the gateway begins to shut down. An admin's own ``c.Proxy.externally_managed``
(a proxy run elsewhere) is left alone.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlparse

API_WAIT_SECONDS = 30


class ProxyAfterApiMixin:
    """In front of a ``DBBackendBase`` backend whose proxy process it starts and stops."""

    _proxy_here = False
    _proxy_start: asyncio.Future | None = None  # the proxy's start, once set-up is done

    async def setup(self, app):
        self._proxy_here = not self.config.Proxy.get("externally_managed", False)
        if self._proxy_here:
            self.config.Proxy.externally_managed = True  # read as the proxy is made
        try:
            await super().setup(app)
        finally:
            if self._proxy_here:
                del self.config.Proxy["externally_managed"]
        if self._proxy_here:
            self.proxy.externally_managed = False
            app.on_shutdown.append(self._stop_proxy_first)
            self._proxy_start = asyncio.ensure_future(self._start_proxy_when_api_listens())

    async def _start_proxy_when_api_listens(self) -> None:
        """Start the proxy process once the gateway's API accepts connections (its site
        starts right after the backend's set-up), within ``API_WAIT_SECONDS``."""
        api = urlparse(self.proxy.gateway_url)
        deadline = time.monotonic() + API_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.open_connection(api.hostname, api.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        self.proxy.start_proxy_process()
        self.proxy.task_pool.spawn(self.proxy.monitor_proxy_process())

    async def _stop_proxy_first(self, app) -> None:
        """Stop the proxy process before the API it reads goes away (the proxy's own
        shutdown step, registered before this one, has stopped its watchdog)."""
        start = self._proxy_start
        if start is not None and not start.done():
            start.cancel()
        process = getattr(self.proxy, "proxy_process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            deadline = time.monotonic() + 5
            while process.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
