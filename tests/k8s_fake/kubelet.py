"""A fake scheduler + kubelet: each pod's containers run as real local processes.

Each pod gets its own loopback IP (127.x.y.z). Binding 0.0.0.0 inside a pod means "the pod's
own address" (its network namespace), so "0.0.0.0" in args and env is rewritten to the pod IP.
Images come from a fake registry (`images`: name -> {"entrypoint": [...], "env": {...}});
pulling an image not in it fails like a real pull (ErrImagePull, then ImagePullBackOff).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import time
import uuid
from pathlib import Path

from .endpoints import dns_env
from .selectors import parse_quantity
from .store import ApiError, Store, now

log = logging.getLogger("k8s_fake.kubelet")
NODE = "fake-node"


class Kubelet:
    def __init__(
        self,
        store: Store,
        root: Path,
        images: dict,
        ip_base: tuple[int, int],
        cpu: str = "8",
        memory: str = "32Gi",
        backoff: float = 0.5,
        network: int = 0,
    ):
        self.store, self.root = store, root
        self.images = images
        self.backoff = backoff
        self._ip = list(ip_base)
        self.network = network  # the second byte of the pods' addresses
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}
        self.procs: dict[tuple[str, str], list[asyncio.subprocess.Process]] = {}
        self.deleting: dict[tuple[str, str], asyncio.Event] = {}
        self.capacity_changed = asyncio.Event()
        self.pulled: set[str] = set()
        self.hosts_file = root / "hosts"  # the cluster DNS (endpoints.py)
        store.listeners.append(self._on_change)
        store.create(
            "nodes",
            "",
            {
                "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
                "status": {
                    "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
                    "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
                },
            },
        )

    # -- wiring
    def _on_change(self, type_: str, plural: str, obj: dict) -> None:
        if plural != "pods":
            return
        key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
        if type_ == "ADDED":
            self.tasks[key] = asyncio.get_running_loop().create_task(
                self._run_pod(key, obj["metadata"]["uid"])
            )
        elif type_ == "MODIFIED" and obj["metadata"].get("deletionTimestamp"):
            if key not in self.deleting:
                self.deleting[key] = asyncio.Event()
                grace = obj["metadata"].get("deletionGracePeriodSeconds", 30)
                asyncio.get_running_loop().create_task(self._terminate(key, grace))
        elif type_ == "DELETED":
            self.capacity_changed.set()
            task = self.tasks.pop(key, None)
            if task and task is not asyncio.current_task():
                task.cancel()
            self._kill(key, signal.SIGKILL)

    def _next_ip(self) -> str:
        a, b = self._ip
        b += 1
        if b > 254:
            a, b = (a % 250) + 2, 1
        self._ip = [a, b]
        return f"127.{self.network}.{a}.{b}"

    def _event(
        self,
        pod: dict,
        reason: str,
        message: str,
        type_: str = "Normal",
        component: str = "kubelet",
        field_path: str | None = None,
    ) -> None:
        meta = pod["metadata"]
        ts = now()
        involved = {
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": "v1",
            "resourceVersion": meta.get("resourceVersion"),
        }
        if field_path:
            involved["fieldPath"] = field_path
        try:
            self.store.create(
                "events",
                meta["namespace"],
                {
                    "metadata": {"name": f"{meta['name']}.{time.time_ns():x}"},
                    "involvedObject": involved,
                    "reason": reason,
                    "message": message,
                    "source": {
                        "component": component,
                        "host": NODE if component == "kubelet" else None,
                    },
                    "firstTimestamp": ts,
                    "lastTimestamp": ts,
                    "eventTime": None,
                    "count": 1,
                    "type": type_,
                    "reportingComponent": component,
                    "reportingInstance": NODE,
                },
            )
        except ApiError:
            pass  # namespace going away

    def _pod(self, key) -> dict | None:
        return self.store.objects.get(("pods", key[0], key[1]))

    def _set_status(self, key, **status) -> None:
        if self._pod(key) is not None:
            self.store.update(
                "pods", key[0], key[1], lambda o: o.setdefault("status", {}).update(status)
            )

    # -- scheduling
    def _requests(self, pod: dict) -> tuple:
        cpu = mem = 0
        for c in pod["spec"].get("containers", []):
            res = c.get("resources") or {}
            req = res.get("requests") or res.get("limits") or {}
            cpu += parse_quantity(req.get("cpu", 0))
            mem += parse_quantity(req.get("memory", 0))
        return cpu, mem

    def _unschedulable_reason(self, pod: dict) -> str | None:
        node = self.store.objects[("nodes", "", NODE)]
        alloc = node["status"]["allocatable"]
        labels = node["metadata"]["labels"]
        for k, v in (pod["spec"].get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return (
                    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
                )
        for v in pod["spec"].get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if (
                claim
                and ("persistentvolumeclaims", pod["metadata"]["namespace"], claim)
                not in self.store.objects
            ):
                return f'0/1 nodes are available: persistentvolumeclaim "{claim}" not found.'
        cpu, mem = self._requests(pod)
        used_cpu = used_mem = 0
        for other in self.store.find("pods"):
            if other is not pod and other["spec"].get("nodeName") == NODE:
                c, m = self._requests(other)
                used_cpu, used_mem = used_cpu + c, used_mem + m
        if used_cpu + cpu > parse_quantity(alloc["cpu"]):
            return "0/1 nodes are available: 1 Insufficient cpu."
        if used_mem + mem > parse_quantity(alloc["memory"]):
            return "0/1 nodes are available: 1 Insufficient memory."
        return None

    async def _schedule(self, key) -> None:
        while True:
            pod = self._pod(key)
            if pod is None:  # deleted while it waited for room
                raise asyncio.CancelledError
            reason = self._unschedulable_reason(pod)
            if reason is None:
                break
            self.capacity_changed.clear()
            self._set_status(
                key,
                phase="Pending",
                conditions=[
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": reason,
                        "lastTransitionTime": now(),
                        "lastProbeTime": None,
                    }
                ],
            )
            self._event(pod, "FailedScheduling", reason, "Warning", component="default-scheduler")
            try:
                await asyncio.wait_for(self.capacity_changed.wait(), 5)
            except TimeoutError:
                pass
        self.store.update("pods", *key, lambda o: o["spec"].update(nodeName=NODE))
        self._set_status(
            key,
            phase="Pending",
            hostIP="127.0.0.1",
            startTime=now(),
            conditions=[
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastTransitionTime": now(),
                    "lastProbeTime": None,
                }
            ],
        )
        self._event(
            self._pod(key),
            "Scheduled",
            f"Successfully assigned {key[0]}/{key[1]} to {NODE}",
            component="default-scheduler",
        )

    # -- images
    async def _pull(self, key, container: dict) -> dict:
        image = container["image"]
        fp = f"spec.containers{{{container['name']}}}"
        delay = self.backoff
        while True:
            pod = self._pod(key)
            if image in self.pulled and container.get("imagePullPolicy") != "Always":
                if image in self.images:
                    self._event(
                        pod,
                        "Pulled",
                        f'Container image "{image}" already present on machine',
                        field_path=fp,
                    )
                    return self.images[image]
            self._event(pod, "Pulling", f'Pulling image "{image}"', field_path=fp)
            if image in self.images:
                self.pulled.add(image)
                self._event(
                    pod,
                    "Pulled",
                    f'Successfully pulled image "{image}" in 12ms (12ms including waiting)',
                    field_path=fp,
                )
                return self.images[image]
            msg = (
                f'Failed to pull image "{image}": rpc error: code = NotFound '
                f"desc = failed to pull and unpack image "
                f'"{image}": failed to resolve reference "{image}": {image}: not found'
            )
            self._event(pod, "Failed", msg, "Warning", field_path=fp)
            self._event(pod, "Failed", "Error: ErrImagePull", "Warning", field_path=fp)
            self._waiting(key, container, "ErrImagePull", msg)
            await asyncio.sleep(delay)
            self._event(
                self._pod(key),
                "BackOff",
                f'Back-off pulling image "{image}"',
                "Normal",
                field_path=fp,
            )
            self._event(
                self._pod(key), "Failed", "Error: ImagePullBackOff", "Warning", field_path=fp
            )
            self._waiting(key, container, "ImagePullBackOff", f'Back-off pulling image "{image}"')
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    def _container_status(
        self, container: dict, state: dict, ready: bool, restarts: int, last=None
    ) -> dict:
        image = container["image"]
        digest = hashlib.sha256(image.encode()).hexdigest()
        return {
            "name": container["name"],
            "image": image,
            "imageID": f"docker.io/{image}@sha256:{digest}",
            "containerID": f"containerd://{uuid.uuid4().hex}",
            "ready": ready,
            "started": ready,
            "restartCount": restarts,
            "state": state,
            "lastState": last or {},
        }

    def _waiting(self, key, container, reason, message) -> None:
        pod = self._pod(key)
        if pod is None:
            return
        statuses = [
            self._container_status(c, {"waiting": {"reason": reason, "message": message}}, False, 0)
            for c in pod["spec"]["containers"]
        ]
        self._set_status(key, phase="Pending", containerStatuses=statuses)

    # -- processes
    def _env(self, pod: dict, container: dict, image: dict, ip: str) -> dict:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOSTNAME": pod["metadata"]["name"]}
        env.update(image.get("env") or {})
        ns = pod["metadata"]["namespace"]
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var.get("value") or ""
            elif ref := (var.get("valueFrom") or {}).get("fieldRef"):
                env[var["name"]] = {
                    "status.podIP": ip,
                    "metadata.name": pod["metadata"]["name"],
                    "metadata.namespace": ns,
                    "spec.nodeName": NODE,
                }.get(ref["fieldPath"], "")
            elif ref := (var.get("valueFrom") or {}).get("secretKeyRef"):
                import base64

                secret = self.store.objects.get(("secrets", ns, ref["name"]), {})
                data = (secret.get("data") or {}).get(ref["key"])
                env[var["name"]] = base64.b64decode(data).decode() if data else ""
        return {k: v.replace("0.0.0.0", ip) for k, v in env.items()}

    def _workdir(self, pod: dict) -> Path:
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        for v in pod["spec"].get("volumes") or []:
            claim = (v.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                path = self.root / "volumes" / ns / claim
                break
        else:
            path = self.root / "pods" / ns / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def _spawn(self, pod, container, image, ip) -> asyncio.subprocess.Process:
        # docker semantics: command replaces the entrypoint, args replace the image's cmd
        command = container.get("command")
        args = container.get("args") or ([] if command else image.get("cmd") or [])
        cmd = list(command or image.get("entrypoint") or []) + list(args)
        if not cmd:
            raise OSError(0, "no command specified")
        cmd = [a.replace("0.0.0.0", ip) for a in cmd]
        workdir = self._workdir(pod)
        env = self._env(pod, container, image, ip)
        env.setdefault("HOME", str(workdir))
        mounts = self._mount_volumes(pod, container)
        env = {k: _remount(v, mounts) for k, v in env.items()}
        cmd = [_expand(_remount(a, mounts), env) for a in cmd]
        env = dns_env(self.hosts_file, env, pod_ip=ip)
        logfile = (
            self.root
            / "logs"
            / f"{pod['metadata']['namespace']}_{pod['metadata']['name']}_{container['name']}.log"
        )
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(logfile, "ab") as out:
            return await asyncio.create_subprocess_exec(
                *cmd,
                env=env,
                cwd=str(workdir),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )

    async def _run_pod(self, key, uid) -> None:
        try:
            await self._lifecycle(key)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("fake kubelet: pod %s/%s failed", *key)

    async def _lifecycle(self, key) -> None:
        await self._schedule(key)
        pod = self._pod(key)
        containers = pod["spec"]["containers"]
        images = [await self._pull(key, c) for c in containers]
        ip = self._next_ip()
        restarts = [0] * len(containers)
        policy = pod["spec"].get("restartPolicy", "Always")
        delay = self.backoff
        while True:
            pod = self._pod(key)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return
            procs = []
            for c, image in zip(containers, images, strict=True):
                fp = f"spec.containers{{{c['name']}}}"
                self._event(pod, "Created", f"Created container {c['name']}", field_path=fp)
                try:
                    procs.append(await self._spawn(pod, c, image, ip))
                except (OSError, ValueError) as e:
                    procs.append(None)
                    self._event(
                        pod,
                        "Failed",
                        f'Error: failed to start container "{c["name"]}": '
                        f"{getattr(e, 'strerror', e)}",
                        "Warning",
                        field_path=fp,
                    )
                    continue
                self._event(pod, "Started", f"Started container {c['name']}", field_path=fp)
            self.procs[key] = [p for p in procs if p]
            started = now()
            statuses = [
                self._container_status(c, {"running": {"startedAt": started}}, p is not None, r)
                for c, p, r in zip(containers, procs, restarts, strict=True)
            ]
            ready = all(p is not None for p in procs)
            probed = ready and any(c.get("readinessProbe") for c in containers)
            if probed:  # Ready once the probes answer (_probe)
                statuses = [dict(s, ready=False) for s in statuses]

            def cond(t, s, at=started):
                return {"type": t, "status": s, "lastTransitionTime": at, "lastProbeTime": None}

            self._set_status(
                key,
                phase="Running",
                podIP=ip,
                podIPs=[{"ip": ip}],
                qosClass="Burstable",
                containerStatuses=statuses,
                conditions=[
                    cond("PodScheduled", "True"),
                    cond("Initialized", "True"),
                    cond("ContainersReady", str(ready and not probed)),
                    cond("Ready", str(ready and not probed)),
                ],
            )
            probe = asyncio.get_running_loop().create_task(self._probe(key, ip)) if probed else None
            codes = [await p.wait() if p else 128 for p in procs]
            if probe is not None:
                probe.cancel()
            self.procs.pop(key, None)
            pod = self._pod(key)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                return
            finished = now()
            terminated = [
                {
                    "terminated": {
                        "exitCode": code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": started,
                        "finishedAt": finished,
                    }
                }
                for code in codes
            ]
            failed = any(codes)
            if policy == "Never" or (policy == "OnFailure" and not failed):
                statuses = [
                    self._container_status(c, t, False, r)
                    for c, t, r in zip(containers, terminated, restarts, strict=True)
                ]
                self._set_status(
                    key,
                    phase="Failed" if failed else "Succeeded",
                    containerStatuses=statuses,
                    conditions=[cond("Ready", "False")],
                )
                return
            restarts = [r + 1 for r in restarts]
            statuses = [
                self._container_status(
                    c,
                    {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {delay}s restarting failed container",
                        }
                    },
                    False,
                    r,
                    last=t,
                )
                for c, t, r in zip(containers, terminated, restarts, strict=True)
            ]
            self._set_status(
                key,
                phase="Running",
                containerStatuses=statuses,
                conditions=[cond("Ready", "False")],
            )
            self._event(pod, "BackOff", "Back-off restarting failed container", "Warning")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)

    async def _probe(self, key, ip: str) -> None:
        """httpGet readiness probes (every 0.1 s, not periodSeconds: tests wait less);
        the pod turns Ready when all answer 2xx/3xx."""
        import aiohttp

        pod = self._pod(key)
        probes = [(c.get("readinessProbe") or {}).get("httpGet") for c in pod["spec"]["containers"]]
        urls = []
        for c, get in zip(pod["spec"]["containers"], probes, strict=True):
            if get:
                port = get.get("port")
                if isinstance(port, str) and not port.isdigit():
                    port = next(
                        (p["containerPort"] for p in c.get("ports") or [] if p.get("name") == port),
                        port,
                    )
                urls.append(f"http://{ip}:{port}{get.get('path', '/')}")
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            pending = list(urls)
            while pending:
                for url in list(pending):
                    try:
                        async with session.get(url) as response:
                            if response.status < 400:
                                pending.remove(url)
                    except (aiohttp.ClientError, OSError, TimeoutError):
                        pass
                if pending:
                    await asyncio.sleep(0.1)
        pod = self._pod(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return

        def mark_ready(o):
            status = o.setdefault("status", {})
            for cs in status.get("containerStatuses") or []:
                cs["ready"] = True
            for c in status.get("conditions") or []:
                if c["type"] in ("Ready", "ContainersReady"):
                    c.update(status="True", lastTransitionTime=now())

        self.store.update("pods", *key, mark_ready)

    def _mount_volumes(self, pod: dict, container: dict) -> dict[str, str]:
        """Secret, configMap and emptyDir volumes as directories of the pod; returns
        mountPath -> local directory (a pod's mount path is its own directory)."""
        import base64

        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        mounts = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"])
            if volume is None or "persistentVolumeClaim" in volume:
                continue
            local = self.root / "pods" / ns / name / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            if "secret" in volume:
                secret = self.store.objects.get(("secrets", ns, volume["secret"]["secretName"]))
                for k, v in ((secret or {}).get("data") or {}).items():
                    (local / k).write_bytes(base64.b64decode(v))
            elif "configMap" in volume:
                config = self.store.objects.get(("configmaps", ns, volume["configMap"]["name"]))
                for k, v in ((config or {}).get("data") or {}).items():
                    (local / k).write_text(v)
            mounts[mount["mountPath"].rstrip("/")] = str(local)
        return mounts

    async def _terminate(self, key, grace: float) -> None:
        pod = self._pod(key)
        if pod is not None:
            for c in pod["spec"]["containers"]:
                self._event(
                    pod,
                    "Killing",
                    f"Stopping container {c['name']}",
                    field_path=f"spec.containers{{{c['name']}}}",
                )
        task = self.tasks.pop(key, None)
        procs = self.procs.get(key, [])
        if task:
            task.cancel()
        self._kill(key, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), grace)
        except TimeoutError:
            pass
        self._kill(key, signal.SIGKILL)
        self.deleting.pop(key, None)
        if self._pod(key) is not None:
            self.store.remove("pods", *key)
            self.store.run_finalizers()

    def logs(self, namespace: str, name: str, container: str | None = None) -> str:
        pod = self._pod((namespace, name))
        container = container or pod["spec"]["containers"][0]["name"]
        path = self.root / "logs" / f"{namespace}_{name}_{container}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _kill(self, key, sig) -> None:
        for p in self.procs.get(key, []) if sig == signal.SIGTERM else self.procs.pop(key, []):
            if p.returncode is None:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass

    async def shutdown(self) -> None:
        """Kill every pod's process group (teardown)."""
        for task in list(self.tasks.values()):
            task.cancel()
        procs = [p for ps in self.procs.values() for p in ps]
        for key in list(self.procs):
            self._kill(key, signal.SIGKILL)
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 5)
            except TimeoutError:
                pass


def _remount(value: str, mounts: dict[str, str]) -> str:
    """``value`` with volume mount paths replaced by the pod's directories for them."""
    for path, local in mounts.items():
        if path and (value == path or value.startswith(path + "/")):
            return local + value[len(path) :]
    return value


def _expand(arg: str, env: dict) -> str:
    """Kubernetes' ``$(VAR)`` expansion in command and args (``$$`` escapes)."""
    import re

    return re.sub(
        r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
        lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)),
        arg,
    )
