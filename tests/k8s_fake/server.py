"""FakeKube: the fake API server + kubelet on their own event loop in a background thread."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web

from pangeohub.hubconfig import free_port  # noqa: F401 (used here and re-exported)

from .api import Api, Fault
from .endpoints import EndpointsController, dns_env
from .kubelet import Kubelet
from .store import Store


def default_images(root: Path) -> dict:
    """The fake registry: notebook images whose PATH finds this venv's jupyterhub-singleuser."""
    bindir = os.path.dirname(sys.executable)
    env = {"PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin"}
    if os.getuid() == 0:
        # what an image run as root needs: jupyter_server refuses root unless allow_root
        config = root / "image-etc-jupyter"
        config.mkdir(parents=True, exist_ok=True)
        (config / "jupyter_server_config.json").write_text('{"ServerApp": {"allow_root": true}}')
        env["JUPYTER_CONFIG_PATH"] = str(config)
    return {
        name: {"entrypoint": [], "cmd": ["jupyterhub-singleuser"], "env": dict(env)}
        for name in (
            "quay.io/jupyterhub/k8s-singleuser-sample:4.0.0",
            "pangeo/base-notebook:2024.01.01",
            "pangeo/pangeo-notebook:2024.01.01",
            "pangeo/ml-notebook:2024.01.01",
            # the tags deploy/ names (pangeo-docker-images has no 2024.01.01)
            "pangeo/pangeo-notebook:2024.01.15",
            "pangeo/ml-notebook:2024.01.15",
        )
    }


class FakeKube:
    """A core/v1 API server on 127.0.0.1:<random port> with a kubelet running real processes.

    All methods are thread-safe: they run on the fake's own loop. Use as a context manager.
    """

    def __init__(
        self,
        namespace: str = "default",
        images: dict | None = None,
        cpu: str = "8",
        memory: str = "32Gi",
        history: int = 2000,
        backoff: float = 0.5,
        kubelet_class: type[Kubelet] = Kubelet,
        pod_network: int = 0,
    ):
        self.namespace = namespace
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.root = Path(tempfile.mkdtemp(prefix="k8s-fake-"))
        self.images = images if images is not None else default_images(self.root)
        self._opts = dict(cpu=cpu, memory=memory, history=history, backoff=backoff)
        self.kubelet_class = kubelet_class  # e.g. lightpods.LightKubelet: no process per pod
        self.pod_network = pod_network  # pods get 127.<pod_network>.x.y: fakes side by side
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="k8s-fake", daemon=True)
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self.kubeconfig = self.root / "kubeconfig"

    # -- lifecycle
    def start(self) -> FakeKube:
        self._thread.start()
        self.call(self._setup)
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
            f"clusters:\n- name: fake\n  cluster:\n    server: {self.url}\n"
            "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: hub\n"
            f"    namespace: {self.namespace}\n"
            "users:\n- name: hub\n  user:\n    token: fake-token\n"
        )
        return self

    async def _setup(self) -> None:
        self.store = Store(history=self._opts["history"])
        for ns in ("default", "kube-system", self.namespace):
            if ("namespaces", "", ns) not in self.store.objects:
                self.store.create(
                    "namespaces", "", {"metadata": {"name": ns}, "status": {"phase": "Active"}}
                )
        base = (random.randint(2, 250), 0)
        self.kubelet = self.kubelet_class(
            self.store,
            self.root,
            self.images,
            base,
            cpu=self._opts["cpu"],
            memory=self._opts["memory"],
            backoff=self._opts["backoff"],
            network=self.pod_network,
        )
        self.api = Api(self.store, self.kubelet)
        self.endpoints = EndpointsController(self.store, self.kubelet.hosts_file)
        self.runner = web.AppRunner(self.api.app(), access_log=None, handle_signals=False)
        await self.runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()

    def stop(self) -> None:
        """Kill all pods' processes, close the server, stop the thread."""
        if not self._thread.is_alive():
            return

        async def teardown():
            await self.kubelet.shutdown()
            await self._drop_connections()
            await self.runner.cleanup()

        try:
            self.call(teardown, timeout=30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def call(self, fn, *args, timeout: float = 30):
        """Run fn(*args) (sync or async) on the fake's loop and return its result."""

        async def run():
            result = fn(*args)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    # -- faults
    def fault(
        self,
        path: str,
        status: int | None = None,
        method: str | None = None,
        *,
        message: str | None = None,
        delay: float = 0.0,
        late: bool = False,
        drop: bool = False,
        times: int | None = None,
    ) -> Fault:
        """Inject a fault for requests whose path matches the regex (and method, if given)."""
        f = Fault(
            path=path,
            method=method,
            status=status,
            message=message,
            delay=delay,
            late=late,
            drop=drop,
            times=times,
        )
        self.call(self.api.faults.append, f)
        return f

    def clear_faults(self) -> None:
        self.call(self.api.faults.clear)

    async def _drop_connections(self) -> None:
        for task in list(self.api.watch_tasks):
            task.cancel()
        if self.site is not None:
            await self.site.stop()
            self.site = None
        server = self.runner.server
        for proto in list(getattr(server, "_connections", {})):
            if proto.transport is not None:
                proto.transport.abort()

    def api_down(self) -> None:
        """Stop listening and drop every connection: clients get 'connection refused'."""
        self.call(self._drop_connections)

    def api_up(self) -> None:
        self.call(self._listen)

    # -- inspection and control
    def list(
        self, plural: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict]:
        return self.call(lambda: self.store.list(plural, namespace, label_selector)[0])

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict | None:
        ns = "" if plural in ("namespaces", "nodes") else (namespace or self.namespace)
        return self.call(lambda: self.store.objects.get((plural, ns, name)))

    def create(self, plural: str, obj: dict, namespace: str | None = None) -> dict:
        return self.call(self.store.create, plural, namespace or self.namespace, obj)

    def delete(
        self, plural: str, name: str, namespace: str | None = None, grace: int | None = None
    ) -> dict:
        return self.call(self.store.delete, plural, namespace or self.namespace, name, grace)

    def define(self, crd: dict) -> dict:
        """Register a CustomResourceDefinition (as applying a chart's crds/ does)."""
        return self.call(self.api.custom.define, crd)

    def dns_env(self, env: dict | None = None) -> dict:
        """Environment for a Python process outside the pods that resolves the cluster's
        service names (``<service>.<namespace>``) as a process in the cluster would."""
        return dns_env(self.kubelet.hosts_file, env)

    def compact(self) -> None:
        self.call(self.store.compact)

    def wait_for(
        self, predicate, timeout: float = 30, interval: float = 0.05, what: str = "condition"
    ):
        """Poll predicate() until truthy (bounded); return its value or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError(f"fake kube: {what} not reached in {timeout}s")

    def processes(self) -> list[int]:
        """PIDs of running pod processes."""
        return self.call(
            lambda: [
                p.pid for ps in self.kubelet.procs.values() for p in ps if p.returncode is None
            ]
        )
