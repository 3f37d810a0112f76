"""The endpoints controller and cluster DNS of the fake cluster.

For every Service with a selector, an ``Endpoints`` object of the same name and labels
lists the matching pods: ready ones under ``addresses``, the others under
``notReadyAddresses``, with the service's ports resolved to container ports (named
``targetPort`` included). It goes when its service goes.

Cluster DNS: pods' processes and the processes the tests start with :func:`dns_env`
resolve ``<service>.<namespace>[.svc[.cluster.local]]`` to the service's ready endpoint
addresses, as a headless service resolves; there is no kube-proxy, so a ClusterIP
service resolves to its endpoints too. The names are kept in a hosts file that
``fake_dns/sitecustomize.py`` reads (``socket.getaddrinfo`` for those names only), since
this machine cannot run kube-dns.
"""

from __future__ import annotations

import asyncio
import copy
import os
from pathlib import Path

from .selectors import label_matcher
from .store import ApiError, Store

DNS_DIR = Path(__file__).resolve().parent / "fake_dns"
HOSTS_ENV = "K8S_FAKE_HOSTS"


def dns_env(hosts_file: Path, env: dict | None = None, pod_ip: str | None = None) -> dict:
    """``env`` (default: this process's) with the fake cluster DNS for a Python process;
    with ``pod_ip``, the process listens on that address for "all addresses"."""
    env = dict(os.environ if env is None else env)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{DNS_DIR}{os.pathsep}{path}" if path else str(DNS_DIR)
    env[HOSTS_ENV] = str(hosts_file)
    if pod_ip:
        env["K8S_FAKE_POD_IP"] = pod_ip
    return env


def _ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _container_port(pod: dict, target) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for c in pod["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target:
                return p.get("containerPort")
    return None


class EndpointsController:
    """Keeps Endpoints in step with services and pods; writes the DNS hosts file."""

    def __init__(self, store: Store, hosts_file: Path):
        self.store, self.hosts_file = store, hosts_file
        self._pending = False
        store.listeners.append(self._on_change)
        self._write_hosts()

    def _on_change(self, type_: str, plural: str, obj: dict) -> None:
        if plural in ("pods", "services") and not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self.sync)

    def subsets(self, service: dict) -> list[dict]:
        selector = (service.get("spec") or {}).get("selector") or {}
        ns = service["metadata"]["namespace"]
        matches = label_matcher(",".join(f"{k}={v}" for k, v in selector.items()))
        ready, not_ready, ports = [], [], []
        for pod in sorted(self.store.find("pods", ns), key=lambda p: p["metadata"]["name"]):
            ip = pod.get("status", {}).get("podIP")
            if not ip or pod["metadata"].get("deletionTimestamp"):
                continue
            if not matches(pod["metadata"].get("labels")):
                continue
            address = {
                "ip": ip,
                "nodeName": pod["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": ns,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                },
            }
            (ready if _ready(pod) else not_ready).append(address)
            if not ports:
                for sp in service["spec"].get("ports") or []:
                    port = _container_port(pod, sp.get("targetPort", sp.get("port")))
                    if port is not None:
                        ports.append({"name": sp.get("name", ""), "port": port, "protocol": "TCP"})
        if not ready and not not_ready:
            return []
        subset = {"ports": ports}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        return [subset]

    def sync(self) -> None:
        self._pending = False
        services = {
            (s["metadata"]["namespace"], s["metadata"]["name"]): s
            for s in self.store.find("services")
            if (s.get("spec") or {}).get("selector")
        }
        for (ns, name), service in services.items():
            subsets = self.subsets(service)
            labels = copy.deepcopy(service["metadata"].get("labels") or {})
            current = self.store.objects.get(("endpoints", ns, name))
            try:
                if current is None:
                    self.store.create(
                        "endpoints",
                        ns,
                        {"metadata": {"name": name, "labels": labels}, "subsets": subsets},
                    )
                elif current.get("subsets") != subsets:
                    self.store.update(
                        "endpoints", ns, name, lambda o, s=subsets: o.update(subsets=s)
                    )
            except ApiError:
                pass  # namespace going away
        for ns, name in [
            (e["metadata"]["namespace"], e["metadata"]["name"])
            for e in self.store.find("endpoints")
        ]:
            owner = self.store.objects.get(("services", ns, name))
            if owner is not None and (owner.get("spec") or {}).get("selector"):
                continue
            if owner is None:
                self.store.remove("endpoints", ns, name)
        self._write_hosts()

    def _write_hosts(self) -> None:
        lines = []
        for e in self.store.find("endpoints"):
            ns, name = e["metadata"]["namespace"], e["metadata"]["name"]
            for subset in e.get("subsets") or []:
                for a in subset.get("addresses") or []:
                    names = [f"{name}.{ns}", f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"]
                    lines.append(f"{a['ip']} {' '.join(names)}")
        tmp = self.hosts_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.hosts_file)
