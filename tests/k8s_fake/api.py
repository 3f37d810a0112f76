"""The fake core/v1 HTTP API (aiohttp): list, chunked watch, CRUD, Status errors, faults."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass

from aiohttp import web

from .custom import CustomResources
from .selectors import SelectorError
from .store import CLUSTER_SCOPED, KINDS, ApiError, Store

_COLLECTION = re.compile(r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>[a-z]+)$")
_OBJECT = re.compile(
    r"^/api/v1/(?:namespaces/(?P<ns>[^/]+)/)?(?P<plural>[a-z]+)/(?P<name>[^/]+)(?P<sub>/status|/log)?$"
)


@dataclass
class Fault:
    """An injected fault for requests whose method and path match."""

    path: str
    method: str | None = None
    status: int | None = None
    message: str | None = None
    delay: float = 0.0
    late: bool = False  # with delay: the request takes effect at once, its answer is late
    drop: bool = False
    times: int | None = None
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return (self.method is None or self.method == method) and re.search(
            self.path, path
        ) is not None


def _json(obj, status=200) -> web.Response:
    return web.Response(status=status, text=json.dumps(obj), content_type="application/json")


def _error(e: ApiError) -> web.Response:
    return _json(e.status(), e.code)


class Api:
    def __init__(self, store: Store, kubelet=None, log_root=None):
        self.store = store
        self.kubelet = kubelet
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []
        self.watch_tasks: set[asyncio.Task] = set()
        self.custom = CustomResources(store, _json, self.watch, _merge)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self.dispatch)
        return app

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        self.requests.append((method, path))
        for fault in self.faults:
            if fault.matches(method, path):
                fault.hits += 1
                if fault.delay and fault.late:  # as a slow etcd: written, answered late
                    response = await self.route(request)
                    await asyncio.sleep(fault.delay)
                    return response
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.drop:
                    if request.transport is not None:
                        request.transport.abort()
                    return web.Response(status=500)
                if fault.status:
                    return _error(
                        ApiError(
                            fault.status,
                            fault.message or self._fault_message(fault.status, method, path),
                        )
                    )
        try:
            return await self.route(request)
        except ApiError as e:
            return _error(e)
        except SelectorError as e:
            return _error(ApiError(400, str(e)))
        except (ConnectionResetError, asyncio.CancelledError):
            return web.Response(status=499)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            return _error(ApiError(400, f"the request could not be understood: {type(e).__name__}"))

    @staticmethod
    def _fault_message(status: int, method: str, path: str) -> str:
        m = _OBJECT.match(path) or _COLLECTION.match(path)
        what = m.group("plural") if m else "resource"
        verb = {
            "GET": "list",
            "POST": "create",
            "DELETE": "delete",
            "PUT": "update",
            "PATCH": "patch",
        }.get(method, method)
        return {
            403: f'{what} is forbidden: User "system:serviceaccount:default:hub" '
            f'cannot {verb} resource "{what}" in API group ""',
            409: f"Operation cannot be fulfilled on {what}: the object has been modified; "
            "please apply your changes to the latest version and try again",
            500: "Internal error occurred: etcdserver: request timed out",
            503: "the server is currently unable to handle the request",
        }.get(status, f"injected fault {status}")

    async def route(self, request: web.Request) -> web.StreamResponse:
        path, method, q = request.path, request.method, request.query
        if path == "/version":
            return _json(
                {
                    "major": "1",
                    "minor": "31",
                    "gitVersion": "v1.31.0-fake",
                    "platform": "linux/amd64",
                }
            )
        if path.startswith("/apis/"):
            return await self.custom.route(request)
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/api":
            return _json(
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )
        if path == "/api/v1":
            return _json(
                {
                    "kind": "APIResourceList",
                    "groupVersion": "v1",
                    "resources": [
                        {
                            "name": p,
                            "kind": k,
                            "namespaced": p not in CLUSTER_SCOPED,
                            "singularName": "",
                            "verbs": [],
                        }
                        for p, k in KINDS.items()
                    ],
                }
            )
        if m := _COLLECTION.match(path):
            ns, plural = m.group("ns"), m.group("plural")
            self._kind(plural)
            if method == "GET":
                if q.get("watch", "").lower() in ("true", "1"):
                    return await self.watch(request, plural, ns)
                items, rv = self.store.list(
                    plural, ns, q.get("labelSelector"), q.get("fieldSelector")
                )
                return _json(
                    {
                        "kind": KINDS[plural] + "List",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": rv},
                        "items": items,
                    }
                )
            if method == "POST":
                if ns is None and plural not in CLUSTER_SCOPED:
                    raise ApiError(
                        405, "the server does not allow this method on the requested resource"
                    )
                body = await request.json()
                return _json(self.store.create(plural, ns or "", body), 201)
            if method == "DELETE" and ns is not None:
                items, _ = self.store.list(
                    plural, ns, q.get("labelSelector"), q.get("fieldSelector")
                )
                for item in items:
                    self.store.delete(plural, ns, item["metadata"]["name"])
                return _json(
                    {
                        "kind": KINDS[plural] + "List",
                        "apiVersion": "v1",
                        "metadata": {},
                        "items": items,
                    }
                )
        if m := _OBJECT.match(path):
            ns, plural, name, sub = (
                m.group("ns"),
                m.group("plural"),
                m.group("name"),
                m.group("sub"),
            )
            if ns is None and plural not in CLUSTER_SCOPED:
                # /api/v1/namespaces/<name> is an object path too
                raise ApiError(404, "the server could not find the requested resource")
            if plural == "namespaces" and ns is not None:
                raise ApiError(404, "the server could not find the requested resource")
            self._kind(plural)
            ns = ns or ""
            if sub == "/log" and method == "GET":
                self.store.get(plural, ns, name)
                return web.Response(
                    text=self.kubelet.logs(ns, name, q.get("container")) if self.kubelet else ""
                )
            if method == "GET":
                return _json(self.store.get(plural, ns, name))
            if method == "DELETE":
                grace = q.get("gracePeriodSeconds")
                if request.can_read_body:
                    body = await request.json()
                    if body and body.get("gracePeriodSeconds") is not None:
                        grace = body["gracePeriodSeconds"]
                obj = self.store.delete(plural, ns, name, None if grace is None else int(grace))
                return _json(
                    obj
                    or {"kind": "Status", "apiVersion": "v1", "status": "Success", "metadata": {}}
                )
            if method == "PUT":
                return _json(self.store.replace(plural, ns, name, await request.json()))
            if method == "PATCH":
                ctype = request.content_type
                if ctype not in (
                    "application/merge-patch+json",
                    "application/strategic-merge-patch+json",
                ):
                    raise ApiError(
                        415,
                        "the body of the request was in an unknown format - accepted media "
                        "types include: application/merge-patch+json, "
                        f"application/strategic-merge-patch+json (got {ctype})",
                    )
                patch = await request.json()
                return _json(self.store.update(plural, ns, name, lambda o: _merge(o, patch)))
            raise ApiError(405, "the server does not allow this method on the requested resource")
        raise ApiError(404, "the server could not find the requested resource")

    @staticmethod
    def _kind(plural: str) -> None:
        if plural not in KINDS:
            raise ApiError(404, "the server could not find the requested resource")

    async def watch(self, request: web.Request, plural: str, ns: str | None) -> web.StreamResponse:
        q = request.query
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        try:
            watcher, initial = self.store.watch(
                plural, ns, q.get("labelSelector"), q.get("fieldSelector"), q.get("resourceVersion")
            )
        except ApiError as e:
            if e.code != 410:
                raise
            await resp.prepare(request)
            await resp.write(json.dumps({"type": "ERROR", "object": e.status()}).encode() + b"\n")
            await resp.write_eof()
            return resp
        task = asyncio.current_task()
        self.watch_tasks.add(task)
        try:
            await resp.prepare(request)
            for type_, obj in initial:
                await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    type_, obj = await asyncio.wait_for(watcher.queue.get(), remaining)
                except TimeoutError:
                    break
                await resp.write(json.dumps({"type": type_, "object": obj}).encode() + b"\n")
            await resp.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.watchers.discard(watcher)
            self.watch_tasks.discard(task)
        return resp


def _merge(target: dict, patch: dict) -> None:
    """RFC 7386 JSON merge patch, in place."""
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        elif isinstance(v, dict) and isinstance(target.get(k), dict):
            _merge(target[k], v)
        else:
            target[k] = v
