"""Light pods: one asyncio server answering as every pod's jupyterhub-singleuser.

A real single-user server costs a process (tens of MiB); a thousand of them do not fit a
test machine. Here the fake kubelet schedules, pulls and reports each pod exactly as for
real processes (status, events, grace periods), but instead of starting the container's
command it opens a listening socket on the pod's own address and port (from
``$JUPYTERHUB_SERVICE_URL``, as the single-user server reads it) in the fake's event loop,
answering every request the way JupyterHub's own mock single-user server
(``jupyterhub.tests.mocksu``) does: the path echoed back, ``.../env`` the pod's environment.
JupyterHub's readiness check, the proxy's routes and a browser all reach it over real HTTP.

    with FakeKube(namespace="jhub", kubelet_class=LightKubelet) as kube:
        ...   # pods cost a socket each, not a process
"""

from __future__ import annotations

import asyncio
import signal
from urllib.parse import urlparse

from aiohttp import web

from .kubelet import Kubelet


class LightProcess:
    """Stands in for a pod's container process: a listening site on the pod's address."""

    pid = None

    def __init__(self, site: web.TCPSite, address: tuple[str, int], env: dict[str, str]):
        self.site, self.address = site, address
        self.env = env
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    async def wait(self) -> int:
        await self._exited.wait()
        return self.returncode

    def signal(self, sig: int) -> None:
        """SIGTERM or SIGKILL: stop listening and exit (a single-user server exits on both)."""
        if self.returncode is not None:
            return
        self.returncode = 0 if sig == signal.SIGTERM else -sig
        asyncio.get_running_loop().create_task(self.site.stop())
        self._exited.set()


class LightKubelet(Kubelet):
    """The fake kubelet, with every pod served by one shared aiohttp application."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._runner: web.AppRunner | None = None
        self.served: dict[tuple[str, int], LightProcess] = {}

    async def _app_runner(self) -> web.AppRunner:
        if self._runner is None:
            app = web.Application()
            app.router.add_route("*", "/{path:.*}", self._answer)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await self._runner.setup()
        return self._runner

    async def _answer(self, request: web.Request) -> web.Response:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        process = self.served.get((sock[0], sock[1])) if sock else None
        if request.path.endswith("/env") and process is not None:
            return web.json_response(process.env)
        if request.path.endswith("/api"):
            return web.json_response({"version": "light-pod"})
        return web.Response(text=request.path)

    async def _spawn(self, pod, container, image, ip) -> LightProcess:
        env = self._env(pod, container, image, ip)
        service_url = env.get("JUPYTERHUB_SERVICE_URL")
        if not service_url:
            raise OSError(0, "a light pod needs JUPYTERHUB_SERVICE_URL (a single-user server)")
        url = urlparse(service_url)
        host, port = url.hostname or ip, url.port or 8888
        site = web.TCPSite(await self._app_runner(), host, port, reuse_address=True)
        await site.start()
        process = LightProcess(site, (host, port), env)
        self.served[process.address] = process
        return process

    def _kill(self, key, sig) -> None:
        procs = self.procs.get(key, []) if sig == signal.SIGTERM else self.procs.pop(key, [])
        for process in procs:
            process.signal(sig)
            if self.served.get(process.address) is process:
                del self.served[process.address]

    async def shutdown(self) -> None:
        await super().shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
