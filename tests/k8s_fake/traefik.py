"""A stand-in for traefik on the fake cluster: dask-gateway's own proxy, routed from the
IngressRoute, IngressRouteTCP and Middleware objects, since traefik cannot run here.

    with TraefikStandIn(kube, web_port, tcp_port) as proxy:
        ...   # http://127.0.0.1:<web_port>/<prefix>/..., gateway://127.0.0.1:<tcp_port>

It runs dask-gateway-server's ``Proxy`` (which starts the real ``dask-gateway-proxy``
binary shipped in its wheel and serves it the routing table) on its own thread, and
every 0.2 s turns the routes in the fake API into that table:

- ``PathPrefix(`/p`)`` with a service and port -> a path route to the service's ready
  endpoint (``http://<pod ip>:<port>``). dask-gateway-proxy strips the matched prefix,
  so a route is honoured only with a ``stripPrefix``/``stripPrefixRegex`` middleware
  that strips exactly that prefix (what the chart and the controller write); any other
  middleware is refused loudly (``errors``), never silently ignored.
- ``HostSNI(`daskgateway-<name>`)`` with ``tls.passthrough`` -> an SNI route to the
  service's endpoint (TLS passes through to the scheduler, as with traefik).
- ``arguments`` (the chart's ``traefik.additionalArguments``): only these are understood.
  ``--providers.kubernetescrd.namespaces=<ns>,...``: as traefik, the stand-in sees routes,
  middlewares, Services and endpoints in those namespaces only (a route, middleware or
  Service elsewhere is as absent); ``--providers.kubernetescrd.disableClusterScopeResources=true``
  (the stand-in reads no cluster-scoped kind anyway);
  ``--entrypoints.web.http.middlewares=<ns>-<name>@kubernetescrd,...``, with only
  ``forwardAuth`` middlewares there. Then a front server of the stand-in's own
  takes the web port and does what traefik's forwardAuth does for every request: a GET
  to ``address`` with the request's headers and ``X-Forwarded-Method/-Proto/-Host/-Uri/
  -For``; a 2xx sends the request on (HTTP or websocket) with each of
  ``authResponseHeaders`` replaced by the answer's (removed when it has none); any
  other answer goes back to the client as it is. Any other argument is refused.
"""

from __future__ import annotations

import asyncio
import re

import aiohttp
from aiohttp import web
from dask_gateway_server.proxy.core import Proxy
from multidict import CIMultiDict

from tests.background_loop import BackgroundLoop

_PATH = re.compile(r"^PathPrefix\(`([^`]+)`\)$")
_SNI = re.compile(r"^HostSNI\(`daskgateway-([^`]+)`\)$")
_WEB_MIDDLEWARES = "--entrypoints.web.http.middlewares="
_NAMESPACES = "--providers.kubernetescrd.namespaces="
_NO_CLUSTER_SCOPE = "--providers.kubernetescrd.disableClusterScopeResources=true"
_HOP = {"connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade"}


class TraefikStandIn(BackgroundLoop):
    def __init__(
        self, kube, web_port: int, tcp_port: int, entrypoints=("web", "tcp"), arguments=()
    ):
        super().__init__()
        self.kube = kube
        self.web_port, self.tcp_port = web_port, tcp_port
        self.entrypoints = set(entrypoints)
        self.web_middlewares: list[str] = []
        self.namespaces: set[str] | None = None  # None: every namespace, traefik's default
        for argument in arguments:
            if argument.startswith(_WEB_MIDDLEWARES):
                self.web_middlewares += argument[len(_WEB_MIDDLEWARES) :].split(",")
            elif argument.startswith(_NAMESPACES):
                self.namespaces = set(argument[len(_NAMESPACES) :].split(","))
            elif argument != _NO_CLUSTER_SCOPE:
                raise ValueError(f"traefik argument not supported by the stand-in: {argument}")
        self.errors: list[str] = []
        self.routes: dict[tuple[str, str], str] = {}

    async def _start(self) -> None:
        from .server import free_port

        api_port = free_port()
        self.app = web.Application()
        # With entrypoint middlewares, the front server takes the web port.
        self.routes_port = free_port() if self.web_middlewares else self.web_port
        self.proxy = Proxy(
            address=f"127.0.0.1:{self.routes_port}",
            tcp_address=f"127.0.0.1:{self.tcp_port}",
            gateway_address=f"127.0.0.1:{api_port}",
            log_level="warn",
        )
        # The routes API is served by this app; its own "/" route is not traefik's.
        await self.proxy.setup(self.app)
        await self.proxy.remove_route(kind="PATH", path="/")
        self.runner = web.AppRunner(self.app, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", api_port).start()
        if self.web_middlewares:
            self.client = aiohttp.ClientSession(auto_decompress=False)
            front = web.Application()
            front.router.add_route("*", "/{tail:.*}", self._front)
            self.front = web.AppRunner(front, handle_signals=False, access_log=None)
            await self.front.setup()
            await web.TCPSite(self.front, "127.0.0.1", self.web_port).start()
        self._task = asyncio.ensure_future(self._sync_loop())

    async def _stop(self) -> None:
        if hasattr(self, "_task"):
            self._task.cancel()
        await self.proxy.cleanup()
        proc = getattr(self.proxy, "proxy_process", None)
        if proc is not None:
            await asyncio.to_thread(proc.wait, 10)
        await self.runner.cleanup()
        if hasattr(self, "front"):
            await self.front.cleanup()
            await self.client.close()

    def _watched(self, namespace: str) -> bool:
        return self.namespaces is None or namespace in self.namespaces

    def _get(self, plural: str, namespace: str, name: str) -> dict | None:
        """An object as traefik sees it: absent outside the watched namespaces."""
        if not self._watched(namespace):
            return None
        return self.kube.store.objects.get((plural, namespace, name))

    # -- the entrypoint's middlewares (forwardAuth), in front of the routes
    def _forward_auths(self) -> list[dict]:
        found = []
        for ref in self.web_middlewares:
            name, _, provider = ref.partition("@")
            matches = [
                mw
                for mw in self.kube.store.find("middlewares")
                if f"{mw['metadata']['namespace']}-{mw['metadata']['name']}" == name
                and self._watched(mw["metadata"]["namespace"])
            ]
            if provider != "kubernetescrd" or len(matches) != 1:
                raise LookupError(f"entrypoint middleware {ref} not found")
            spec = matches[0].get("spec") or {}
            if set(spec) != {"forwardAuth"}:
                raise ValueError(f"entrypoint middleware {ref} is not supported: {spec}")
            found.append(spec["forwardAuth"])
        return found

    async def _front(self, request: web.Request) -> web.StreamResponse:
        try:
            auths = await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self._on_kube(self._forward_auths), self.kube.loop)
            )
        except (LookupError, ValueError) as error:
            self.errors.append(repr(error))
            return web.Response(status=500, text="middleware error")
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        for auth in auths:
            asked = CIMultiDict(headers)
            asked.update(
                {
                    "X-Forwarded-Method": request.method,
                    "X-Forwarded-Proto": "http",
                    "X-Forwarded-Host": request.host,
                    "X-Forwarded-Uri": str(request.rel_url),
                    "X-Forwarded-For": request.remote or "",
                }
            )
            asked.pop("Host", None)
            async with self.client.get(
                auth["address"], headers=asked, allow_redirects=False
            ) as answer:
                body = await answer.read()
                if not 200 <= answer.status < 300:
                    out = CIMultiDict(
                        (k, v)
                        for k, v in answer.headers.items()
                        if k.lower() not in _HOP | {"content-length"}
                    )
                    return web.Response(status=answer.status, body=body, headers=out)
                for name in auth.get("authResponseHeaders") or []:
                    headers.popall(name, None)
                    for value in answer.headers.getall(name, []):
                        headers.add(name, value)
        target = f"http://127.0.0.1:{self.routes_port}{request.rel_url}"
        return await relay(self.client, request, target, headers)

    async def _on_kube(self, fn):
        return fn()

    async def _sync_loop(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as error:  # noqa: BLE001 - reported to the tests
                self.errors.append(repr(error))
            await asyncio.sleep(0.2)

    # -- routes from the objects
    def _endpoint(self, namespace: str, service: str, port: int) -> str | None:
        svc = self._get("services", namespace, service)
        endpoints = self._get("endpoints", namespace, service)
        if svc is None or endpoints is None:
            return None
        name = next(
            (p.get("name", "") for p in svc["spec"].get("ports") or [] if p.get("port") == port),
            None,
        )
        for subset in endpoints.get("subsets") or []:
            target = next(
                (p["port"] for p in subset.get("ports") or [] if p.get("name", "") == name),
                None,
            )
            for address in subset.get("addresses") or []:
                if target is not None:
                    return f"{address['ip']}:{target}"
        return None

    def _strips(self, namespace: str, middlewares, prefix: str) -> bool:
        stripped = False
        for ref in middlewares or []:
            ns = ref.get("namespace") or namespace
            mw = self._get("middlewares", ns, ref["name"])
            if mw is None:
                raise LookupError(f"middleware {ns}/{ref['name']} not found")
            spec = mw.get("spec") or {}
            bare = prefix.rstrip("/")
            if "stripPrefix" in spec and bare in [
                p.rstrip("/") for p in spec["stripPrefix"].get("prefixes", [])
            ]:
                stripped = True
            elif "stripPrefixRegex" in spec and any(
                re.fullmatch(r, bare) for r in spec["stripPrefixRegex"].get("regex", [])
            ):
                stripped = True
            else:
                raise ValueError(f"middleware {ns}/{ref['name']} is not supported: {spec}")
        return stripped

    def wanted(self) -> dict[tuple[str, str], str]:
        """(kind, path or sni) -> target, from the fake's routes."""
        store, out = self.kube.store, {}
        for plural in ("ingressroutes", "ingressroutetcps"):
            for route in list(store.find(plural)):
                ns = route["metadata"]["namespace"]
                if not self._watched(ns):
                    continue
                spec = route.get("spec") or {}
                if not self.entrypoints & set(spec.get("entryPoints") or self.entrypoints):
                    continue
                for rule in spec.get("routes") or []:
                    services = rule.get("services") or []
                    if not services:
                        continue
                    svc = services[0]
                    target = self._endpoint(svc.get("namespace") or ns, svc["name"], svc["port"])
                    if target is None:
                        continue
                    if plural == "ingressroutes" and (m := _PATH.match(rule["match"])):
                        prefix = m.group(1)
                        if not self._strips(ns, rule.get("middlewares"), prefix):
                            target = target + prefix
                        out[("PATH", prefix.rstrip("/") or "/")] = f"http://{target}"
                    elif plural == "ingressroutetcps" and (m := _SNI.match(rule["match"])):
                        if not (spec.get("tls") or {}).get("passthrough"):
                            raise ValueError(f"{route['metadata']['name']}: TLS not passed on")
                        out[("SNI", m.group(1))] = target
        return out

    async def sync(self) -> None:
        wanted = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self._wanted(), self.kube.loop)
        )
        for key in set(self.routes) - set(wanted):
            kind, where = key
            await self.proxy.remove_route(kind=kind, **{"path" if kind == "PATH" else "sni": where})
            del self.routes[key]
        for key, target in wanted.items():
            if self.routes.get(key) != target:
                kind, where = key
                await self.proxy.add_route(
                    kind=kind, target=target, **{"path" if kind == "PATH" else "sni": where}
                )
                self.routes[key] = target

    async def _wanted(self):
        return self.wanted()  # on the fake's loop: a consistent view of its store


async def relay(client, request, target: str, headers) -> web.StreamResponse:
    """Send ``request`` on to ``target`` (http://...) with ``headers``: its answer, or
    for a websocket's handshake, the websocket relayed both ways."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return await relay_websocket(client, request, target, headers)
    async with client.request(
        request.method, target, headers=headers, data=await request.read(), allow_redirects=False
    ) as answer:
        body = await answer.read()
        out = CIMultiDict(
            (k, v) for k, v in answer.headers.items() if k.lower() not in _HOP | {"content-length"}
        )
        return web.Response(status=answer.status, body=body, headers=out)


async def relay_websocket(client, request, target: str, headers) -> web.StreamResponse:
    """Open ``target`` (http://...) as a websocket with ``headers`` and relay both ways."""
    keep = {k: v for k, v in headers.items() if not k.lower().startswith("sec-websocket")}
    asked = request.headers.get("Sec-WebSocket-Protocol", "")
    protocols = [p.strip() for p in asked.split(",") if p.strip()]
    async with client.ws_connect(
        target.replace("http://", "ws://", 1), headers=keep, protocols=protocols
    ) as up:
        down = web.WebSocketResponse(protocols=[up.protocol] if up.protocol else ())
        await down.prepare(request)

        async def pump(source, sink):
            async for message in source:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await sink.send_str(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    await sink.send_bytes(message.data)
                else:
                    break
            await sink.close()

        await asyncio.gather(pump(up, down), pump(down, up), return_exceptions=True)
        return down
