"""The fake API server's object store: resourceVersions, history for watches, GC, quotas."""

from __future__ import annotations

import asyncio
import copy
import datetime
import uuid
from collections import deque
from collections.abc import Callable

from .selectors import field_matcher, label_matcher, parse_quantity

KINDS = {
    "namespaces": "Namespace",
    "nodes": "Node",
    "pods": "Pod",
    "persistentvolumeclaims": "PersistentVolumeClaim",
    "services": "Service",
    "secrets": "Secret",
    "configmaps": "ConfigMap",
    "events": "Event",
    "resourcequotas": "ResourceQuota",
    "serviceaccounts": "ServiceAccount",
    "endpoints": "Endpoints",
}
CLUSTER_SCOPED = {"namespaces", "nodes"}
SINGULAR = {
    "persistentvolumeclaims": "persistentvolumeclaims",
}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error the API answers with a Status body."""

    REASONS = {
        400: "BadRequest",
        403: "Forbidden",
        404: "NotFound",
        405: "MethodNotAllowed",
        409: "AlreadyExists",
        410: "Expired",
        415: "UnsupportedMediaType",
        422: "Invalid",
        500: "InternalError",
        503: "ServiceUnavailable",
    }

    def __init__(self, code: int, message: str, reason: str | None = None, details=None):
        super().__init__(message)
        self.code, self.message = code, message
        self.reason = reason or self.REASONS.get(code, "Unknown")
        self.details = details or {}

    def status(self) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def not_found(plural: str, name: str) -> ApiError:
    return ApiError(404, f'{plural} "{name}" not found', details={"name": name, "kind": plural})


class Watcher:
    """One open watch: a queue of (type, object) filtered by namespace and selectors."""

    def __init__(self, plural, namespace, labels, fields):
        self.plural, self.namespace = plural, namespace
        self.labels, self.fields = labels, fields
        self.queue: asyncio.Queue = asyncio.Queue()

    def matches(self, plural: str, obj: dict) -> bool:
        meta = obj["metadata"]
        return (
            plural == self.plural
            and (not self.namespace or meta.get("namespace") == self.namespace)
            and self.labels(meta.get("labels"))
            and self.fields(obj)
        )


class Store:
    """All objects, keyed (plural, namespace, name); every change bumps one resourceVersion."""

    def __init__(self, history: int = 2000):
        self.rv = 0
        self.objects: dict[tuple[str, str, str], dict] = {}
        self.history: deque = deque(maxlen=history)
        self.watchers: set[Watcher] = set()
        self.listeners: list[Callable[[str, str, dict], None]] = []
        self.compacted_rv = 0
        # custom resources: plural -> (kind, "group/version"), registered by CRDs
        self.custom_kinds: dict[str, tuple[str, str]] = {}
        self.cluster_scoped = set(CLUSTER_SCOPED)

    def kind_of(self, plural: str) -> tuple[str, str]:
        """(kind, apiVersion) of a core or custom resource."""
        if plural in self.custom_kinds:
            return self.custom_kinds[plural]
        return KINDS[plural], "v1"

    # -- bookkeeping
    def _emit(self, type_: str, plural: str, obj: dict) -> None:
        snapshot = copy.deepcopy(obj)
        self.history.append((self.rv, type_, plural, snapshot))
        for w in list(self.watchers):
            if w.matches(plural, snapshot):
                w.queue.put_nowait((type_, snapshot))
        for listener in self.listeners:
            listener(type_, plural, snapshot)

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def oldest_rv(self) -> int:
        """Watches from before this resourceVersion get 410 Gone."""
        oldest = self.history[0][0] - 1 if len(self.history) == self.history.maxlen else 0
        return max(oldest, self.compacted_rv)

    def compact(self) -> None:
        """Forget all history, as etcd compaction does: older watches get 410."""
        self.history.clear()
        self.compacted_rv = self.rv

    # -- reads
    def get(self, plural: str, namespace: str, name: str) -> dict:
        obj = self.objects.get((plural, namespace or "", name))
        if obj is None:
            raise not_found(plural, name)
        return copy.deepcopy(obj)

    def find(self, plural: str, namespace: str | None = None) -> list[dict]:
        return [
            o
            for (p, ns, _), o in self.objects.items()
            if p == plural and (namespace is None or ns == namespace)
        ]

    def list(self, plural, namespace=None, label_selector=None, field_selector=None):
        labels = label_matcher(label_selector)
        fields = field_matcher(field_selector, plural)
        items = [
            copy.deepcopy(o)
            for o in self.find(plural, namespace or None)
            if labels(o["metadata"].get("labels")) and fields(o)
        ]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, str(self.rv)

    def watch(self, plural, namespace, label_selector, field_selector, resource_version):
        """Subscribe; returns (watcher, initial events). No await between snapshot and subscribe."""
        w = Watcher(
            plural, namespace, label_matcher(label_selector), field_matcher(field_selector, plural)
        )
        initial = []
        if resource_version in (None, "", "0"):
            for o in self.find(plural, namespace or None):
                if w.matches(plural, o):
                    initial.append(("ADDED", copy.deepcopy(o)))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise ApiError(400, f"invalid resource version: {resource_version}") from None
            if since < self.oldest_rv():
                raise ApiError(
                    410,
                    f"too old resource version: {since} ({self.oldest_rv() + 1})",
                    reason="Expired",
                )
            for rv, type_, p, o in self.history:
                if rv > since and w.matches(p, o):
                    initial.append((type_, copy.deepcopy(o)))
        self.watchers.add(w)
        return w, initial

    # -- writes
    def create(self, plural: str, namespace: str, obj: dict) -> dict:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(
                    422,
                    f'{self.kind_of(plural)[0]} "" is invalid: metadata.name: Required value: '
                    "name or generateName is required",
                )
        name = meta["name"]
        if plural in self.cluster_scoped:
            namespace = ""
        else:
            if ("namespaces", "", namespace) not in self.objects:
                raise not_found("namespaces", namespace)
            ns_obj = self.objects[("namespaces", "", namespace)]
            if ns_obj["metadata"].get("deletionTimestamp"):
                raise ApiError(
                    403,
                    f'{plural} "{name}" is forbidden: unable to create new content in '
                    f"namespace {namespace} because it is being terminated",
                )
            meta["namespace"] = namespace
        key = (plural, namespace, name)
        if key in self.objects:
            raise ApiError(
                409, f'{plural} "{name}" already exists', details={"name": name, "kind": plural}
            )
        self.check_quota(plural, namespace, obj)
        _canonical_quantities(obj)
        _defaults(plural, obj)
        obj["kind"], obj["apiVersion"] = self.kind_of(plural)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        meta["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        self._emit("ADDED", plural, obj)
        if meta.get("ownerReferences") and not self._owner_present(namespace, meta):
            # the garbage collector, soon after: every owner is absent from the
            # dependent's namespace (an owner in another namespace counts as absent)
            try:
                later = asyncio.get_running_loop().call_soon
            except RuntimeError:
                later = None
            if later is not None:
                later(self._collect_orphan, plural, namespace, name, meta["uid"])
            else:
                self._collect_orphan(plural, namespace, name, meta["uid"])
        return copy.deepcopy(obj)

    def _owner_present(self, namespace: str, meta: dict) -> bool:
        """Some owner of an object in ``namespace`` exists there (or cluster-scoped)."""
        uids = {r.get("uid") for r in meta.get("ownerReferences") or []}
        return any(
            ns in ("", namespace) and o["metadata"].get("uid") in uids
            for (_, ns, _), o in self.objects.items()
        )

    def _collect_orphan(self, plural: str, namespace: str, name: str, uid: str) -> None:
        obj = self.objects.get((plural, namespace, name))
        if obj is not None and obj["metadata"]["uid"] == uid:
            if not self._owner_present(namespace, obj["metadata"]):
                self.delete(plural, namespace, name)

    def update(
        self, plural: str, namespace: str, name: str, mutate: Callable[[dict], None]
    ) -> dict:
        """Apply mutate(obj) in place and emit MODIFIED (the kubelet's and controllers' writes)."""
        key = (plural, namespace or "", name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(plural, name)
        mutate(obj)
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("MODIFIED", plural, obj)
        if obj["metadata"].get("deletionTimestamp") and not obj["metadata"].get("finalizers"):
            # the last finalizer of an object being deleted is gone: it goes now
            if plural != "pods" and plural != "namespaces":
                self.remove(plural, namespace, name)
        return copy.deepcopy(obj)

    def replace(self, plural: str, namespace: str, name: str, new: dict) -> dict:
        key = (plural, namespace or "", name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(plural, name)
        rv = new.get("metadata", {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {plural} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                reason="Conflict",
            )
        new = copy.deepcopy(new)
        for field in ("uid", "creationTimestamp", "namespace", "name", "deletionTimestamp"):
            if field in old["metadata"]:
                new.setdefault("metadata", {})[field] = old["metadata"][field]
        if plural == "pods":
            new["status"] = old.get("status", {})
        new["kind"], new["apiVersion"] = old["kind"], old["apiVersion"]
        return self.update(plural, namespace, name, lambda o: (o.clear(), o.update(new)))

    def remove(self, plural: str, namespace: str, name: str) -> dict | None:
        """Remove the object now (DELETED), then garbage-collect its dependents."""
        obj = self.objects.pop((plural, namespace or "", name), None)
        if obj is None:
            return None
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", plural, obj)
        uid = obj["metadata"]["uid"]
        # A namespaced owner owns only dependents in its own namespace (Kubernetes treats
        # a reference to an owner in another namespace as absent); a cluster-scoped one, any.
        owner_ns = namespace or ""
        for (p, ns, n), dep in list(self.objects.items()):
            if owner_ns and ns != owner_ns:
                continue
            refs = dep["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs) and (p, ns, n) in self.objects:
                self.delete(p, ns, n)
        if plural == "namespaces":
            for p, ns, n in [k for k in self.objects if k[1] == name]:
                self.remove(p, ns, n)
        return obj

    def delete(self, plural: str, namespace: str, name: str, grace: int | None = None) -> dict:
        """API delete: honours finalizers; pods terminate gracefully through the kubelet."""
        key = (plural, namespace or "", name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(plural, name)
        meta = obj["metadata"]
        if plural == "pods":
            if grace is None:
                grace = obj["spec"].get("terminationGracePeriodSeconds", 30)
            running = obj.get("status", {}).get("phase") in ("Running", "Pending") and obj[
                "spec"
            ].get("nodeName")
            if grace > 0 and running:
                if not meta.get("deletionTimestamp"):
                    return self.update(
                        plural,
                        namespace,
                        name,
                        lambda o: o["metadata"].update(
                            deletionTimestamp=now(), deletionGracePeriodSeconds=grace
                        ),
                    )
                return copy.deepcopy(obj)
        if meta.get("finalizers"):
            if not meta.get("deletionTimestamp"):
                self.update(
                    plural, namespace, name, lambda o: o["metadata"].update(deletionTimestamp=now())
                )
            self.run_finalizers()
            return copy.deepcopy(self.objects.get(key, obj))
        if plural == "namespaces":
            self.update(
                plural,
                namespace,
                name,
                lambda o: (
                    o["metadata"].update(deletionTimestamp=now()),
                    o.setdefault("status", {}).update(phase="Terminating"),
                ),
            )
        removed = self.remove(plural, namespace, name)
        if plural == "pods":
            self.run_finalizers()
        return removed

    def run_finalizers(self) -> None:
        """The pvc-protection controller: a deleted claim goes once no pod mounts it."""
        for pvc in list(self.find("persistentvolumeclaims")):
            meta = pvc["metadata"]
            if not meta.get("deletionTimestamp"):
                continue
            ns, name = meta["namespace"], meta["name"]
            in_use = any(
                v.get("persistentVolumeClaim", {}).get("claimName") == name
                for pod in self.find("pods", ns)
                for v in pod["spec"].get("volumes") or []
            )
            if not in_use:
                meta["finalizers"] = []
                self.remove("persistentvolumeclaims", ns, name)

    # -- admission
    def check_quota(self, plural: str, namespace: str, obj: dict) -> None:
        """ResourceQuota admission for pods, claims and requested storage (403 exceeded quota)."""
        if plural not in ("pods", "persistentvolumeclaims"):
            return
        for quota in self.find("resourcequotas", namespace):
            hard = quota.get("spec", {}).get("hard", {})
            used = {}
            existing = self.find(plural, namespace)
            if plural in hard:
                used[plural] = (len(existing), 1)
            if plural == "persistentvolumeclaims" and "requests.storage" in hard:
                size = lambda o: parse_quantity(o["spec"]["resources"]["requests"]["storage"])  # noqa: E731
                used["requests.storage"] = (sum(size(o) for o in existing), size(obj))
            for resource, (in_use, requested) in used.items():
                limit = parse_quantity(hard[resource])
                if in_use + requested > limit:
                    qname = quota["metadata"]["name"]
                    name = obj["metadata"]["name"]
                    raise ApiError(
                        403,
                        f'{plural} "{name}" is forbidden: exceeded quota: {qname}, '
                        f"requested: {resource}={requested}, used: {resource}={in_use}, "
                        f"limited: {resource}={hard[resource]}",
                        details={"name": name, "kind": plural},
                    )


def _canonical(value):
    """A quantity the way the API server returns it: numbers become strings ("1", "500m")."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    number = parse_quantity(value)
    if number == number.to_integral_value():
        return str(int(number))
    return f"{int(number * 1000)}m"


def _canonical_quantities(obj: dict) -> None:
    spec = obj.get("spec") or {}
    resources = [c.get("resources") or {} for c in spec.get("containers") or []]
    resources.append(spec.get("resources") or {})
    for res in resources:
        for section in ("limits", "requests"):
            for key, value in (res.get(section) or {}).items():
                res[section][key] = _canonical(value)


def _defaults(plural: str, obj: dict) -> None:
    """What the API server fills in on create."""
    spec = (
        obj.setdefault("spec", {})
        if plural in ("pods", "persistentvolumeclaims", "services")
        else {}
    )
    if plural == "pods":
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        for c in spec.get("containers") or []:
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault(
                "imagePullPolicy",
                "Always" if c.get("image", "").endswith(":latest") else "IfNotPresent",
            )
        obj["status"] = {"phase": "Pending", "qosClass": "Burstable"}
    elif plural == "persistentvolumeclaims":
        # a fake dynamic provisioner binds every claim at once
        spec.setdefault("volumeMode", "Filesystem")
        spec.setdefault("storageClassName", "standard")
        spec["volumeName"] = (
            f"pvc-{obj['metadata']['uid'] if 'uid' in obj['metadata'] else uuid.uuid4()}"
        )
        size = (spec.get("resources") or {}).get("requests", {}).get("storage")
        obj["status"] = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes", []),
            "capacity": {"storage": size},
        }
        obj["metadata"].setdefault("finalizers", ["kubernetes.io/pvc-protection"])
    elif plural == "namespaces":
        obj["status"] = {"phase": "Active"}
