"""Custom resources on the fake API server, the way the real one serves them.

A ``CustomResourceDefinition`` (``apiextensions.k8s.io/v1``, cluster-scoped) registers
``/apis/<group>/<version>/[namespaces/<ns>/]<plural>[/<name>[/status]]``: list (with label
selectors), chunked watch, create, get, replace, merge and JSON patches, delete (finalizers
and ``deletionTimestamp``, owner-reference GC through the store). With a ``status``
subresource, writes to the object keep its status and writes to ``/status`` change only
the status. Objects live in the same :class:`~.store.Store` as core ones (one
resourceVersion sequence, the same watches).
"""

from __future__ import annotations

import copy
import re

from aiohttp import web

from .store import ApiError, Store

CRD_PLURAL = "customresourcedefinitions"
CRD_PATH = re.compile(
    r"^/apis/apiextensions\.k8s\.io/v1/customresourcedefinitions(?:/(?P<name>[^/]+))?$"
)
_PATH = re.compile(
    r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)(?:/namespaces/(?P<ns>[^/]+))?"
    r"/(?P<plural>[a-z0-9]+)(?:/(?P<name>[^/]+)(?P<sub>/status)?)?$"
)


class CustomResources:
    """The ``/apis/...`` routes; ``json_response`` and ``watch`` come from the core API."""

    def __init__(self, store: Store, json_response, watch, merge):
        self.store = store
        self.json, self.watch, self.merge = json_response, watch, merge
        self.definitions: dict[str, dict] = {}  # plural -> {group, version, kind, ...}
        store.custom_kinds[CRD_PLURAL] = ("CustomResourceDefinition", "apiextensions.k8s.io/v1")
        store.cluster_scoped.add(CRD_PLURAL)

    # -- definitions
    def define(self, crd: dict) -> dict:
        """Register a CRD object (as ``kubectl apply -f crds/...`` would)."""
        spec = crd["spec"]
        plural, kind = spec["names"]["plural"], spec["names"]["kind"]
        versions = [v for v in spec["versions"] if v.get("served", True)]
        definition = {
            "group": spec["group"],
            "versions": {v["name"] for v in versions},
            "kind": kind,
            "namespaced": spec.get("scope", "Namespaced") == "Namespaced",
            "status": any("status" in (v.get("subresources") or {}) for v in versions),
        }
        stored = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"])
        self.definitions[plural] = definition
        self.store.custom_kinds[plural] = (kind, f"{spec['group']}/{stored}")
        if not definition["namespaced"]:
            self.store.cluster_scoped.add(plural)
        crd = copy.deepcopy(crd)
        crd.setdefault("metadata", {}).setdefault("name", f"{plural}.{spec['group']}")
        if ("customresourcedefinitions", "", crd["metadata"]["name"]) in self.store.objects:
            return self.store.get(CRD_PLURAL, "", crd["metadata"]["name"])
        return self.store.create(CRD_PLURAL, "", crd)

    def _definition(self, group, version, plural) -> dict:
        d = self.definitions.get(plural)
        if d is None or d["group"] != group or version not in d["versions"]:
            raise ApiError(404, "the server could not find the requested resource")
        return d

    # -- routes
    async def route(self, request: web.Request) -> web.StreamResponse:
        path, method = request.path, request.method
        if m := CRD_PATH.match(path):
            if method == "POST":
                return self.json(self.define(await request.json()), 201)
            if method == "GET" and m.group("name"):
                return self.json(self.store.get(CRD_PLURAL, "", m.group("name")))
            if method == "GET":
                items, rv = self.store.list(CRD_PLURAL)
                return self.json(self._list("CustomResourceDefinition", items, rv))
            raise ApiError(405, "the server does not allow this method on the requested resource")
        m = _PATH.match(path)
        if not m:
            raise ApiError(404, "the server could not find the requested resource")
        group, version, ns, plural = m.group("group", "version", "ns", "plural")
        name, sub = m.group("name"), m.group("sub")
        d = self._definition(group, version, plural)
        if ns is not None and not d["namespaced"]:
            raise ApiError(404, "the server could not find the requested resource")
        if name is None:
            return await self._collection(request, d, plural, ns)
        if sub and not d["status"]:
            raise ApiError(404, "the server could not find the requested resource")
        ns = ns or ""
        if ns == "" and d["namespaced"]:
            raise ApiError(404, "the server could not find the requested resource")
        if method == "GET":
            return self.json(self.store.get(plural, ns, name))
        if method == "DELETE":
            obj = self.store.delete(plural, ns, name)
            return self.json(obj)
        if method in ("PUT", "PATCH"):
            body = await request.json()
            if method == "PATCH":
                body = self._patched(self.store.get(plural, ns, name), body, request.content_type)
            return self.json(self._write(plural, ns, name, body, d, status_only=bool(sub)))
        raise ApiError(405, "the server does not allow this method on the requested resource")

    async def _collection(self, request, d, plural, ns):
        q, method = request.query, request.method
        kind = d["kind"]
        if method == "GET":
            if q.get("watch", "").lower() in ("true", "1"):
                return await self.watch(request, plural, ns)
            items, rv = self.store.list(plural, ns, q.get("labelSelector"), q.get("fieldSelector"))
            return self.json(self._list(kind, items, rv, self.store.kind_of(plural)[1]))
        if method == "POST":
            if ns is None and d["namespaced"]:
                raise ApiError(
                    405, "the server does not allow this method on the requested resource"
                )
            body = await request.json()
            if d["status"]:
                body.pop("status", None)
            return self.json(self.store.create(plural, ns or "", body), 201)
        raise ApiError(405, "the server does not allow this method on the requested resource")

    @staticmethod
    def _list(kind, items, rv, api_version="apiextensions.k8s.io/v1") -> dict:
        return {
            "kind": kind + "List",
            "apiVersion": api_version,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def _patched(self, obj: dict, patch, content_type: str) -> dict:
        if content_type == "application/json-patch+json":
            return json_patch(obj, patch)
        if content_type == "application/merge-patch+json":
            self.merge(obj, patch)
            return obj
        # custom resources have no strategic merge (the real API answers 415 too)
        raise ApiError(
            415,
            "the body of the request was in an unknown format - accepted media types include: "
            f"application/json-patch+json, application/merge-patch+json (got {content_type})",
        )

    def _write(self, plural, ns, name, new: dict, d: dict, status_only: bool) -> dict:
        old = self.store.get(plural, ns, name)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                reason="Conflict",
            )
        if status_only:
            result = copy.deepcopy(old)
            result["status"] = new.get("status", {})
        else:
            result = copy.deepcopy(new)
            for field in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
                if field in old["metadata"]:
                    result.setdefault("metadata", {})[field] = old["metadata"][field]
            if d["status"]:
                result.pop("status", None)
                if "status" in old:
                    result["status"] = old["status"]
        result["kind"], result["apiVersion"] = old["kind"], old["apiVersion"]
        return self.store.update(plural, ns, name, lambda o: (o.clear(), o.update(result)))


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f"the JSON patch path {path!r} must start with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(obj: dict, ops) -> dict:
    """RFC 6902 (add, remove, replace, test, copy, move) applied to a copy of ``obj``."""
    if not isinstance(ops, list):
        raise ApiError(400, "a JSON patch must be a list of operations")
    doc = copy.deepcopy(obj)

    def parent(path):
        parts = _pointer(path)
        if not parts:
            raise ApiError(422, "the JSON patch cannot replace the whole object")
        target = doc
        for p in parts[:-1]:
            try:
                target = target[int(p)] if isinstance(target, list) else target[p]
            except (KeyError, IndexError, ValueError):
                raise ApiError(
                    422, f"the server rejected our request: missing path {path!r}"
                ) from None
        return target, parts[-1]

    def get(path):
        target, key = parent(path)
        try:
            return target[int(key)] if isinstance(target, list) else target[key]
        except (KeyError, IndexError, ValueError):
            raise ApiError(422, f"the server rejected our request: missing path {path!r}") from None

    def remove(path):
        target, key = parent(path)
        get(path)
        return target.pop(int(key)) if isinstance(target, list) else target.pop(key)

    def add(path, value):
        target, key = parent(path)
        if isinstance(target, list):
            target.insert(len(target) if key == "-" else int(key), value)
        else:
            target[key] = value

    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        if kind == "add":
            add(path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            remove(path)
        elif kind == "replace":
            remove(path)
            add(path, copy.deepcopy(op["value"]))
        elif kind == "test":
            if get(path) != op["value"]:
                raise ApiError(422, f"the JSON patch test at {path!r} failed")
        elif kind in ("copy", "move"):
            value = copy.deepcopy(get(op["from"])) if kind == "copy" else remove(op["from"])
            add(path, value)
        else:
            raise ApiError(422, f"unknown JSON patch operation {kind!r}")
    return doc
