"""A hub for a thousand people: sign in and start a server for N people at a steady rate,
as hubtraf does, on the fake Kubernetes API with light pods; pangeo-kubernetes vs plain
KubeSpawner, and the ratios.

Each run is the real jupyterhub + configurable-http-proxy with pangeohub's whole
configuration (scratch, Dask Gateway and culler services included) and the same
authenticator (pangeohub's local one: a password form, the same for both runs); only the
spawner class differs. Pods are light (tests/k8s_fake/lightpods.py): one asyncio server
in the fake kubelet answers as every pod's single-user server, so 1,000 running servers
fit one machine. Every person, one every 1/rate seconds: GET the login form, POST it, POST
/hub/api/users/<name>/server, follow the progress event stream to ``ready`` (the time from
the POST is spawn-to-ready), then GET their server through the proxy. Meanwhile a prober
calls the hub's API every ``--probe-every`` seconds (hub API latency under load). When
all are running the script reads, from the hub process itself: CPU seconds (utime+stime
in /proc/<pid>/stat) over the whole load / N = CPU per spawn, and its memory (VmRSS,
VmHWM); then it times one pass of the idle culler over all users (jupyterhub-idle-culler's
cull_idle, pangeohub's arbiter for pangeohub; nobody is idle long enough to be culled).

    .venv/bin/python benchmarks/bench_scale.py                # 100 then 1,000 people
    .venv/bin/python benchmarks/bench_scale.py --users 10 --rate 5   # a quick look
    .venv/bin/python benchmarks/bench_scale.py --together --repeat 3  # both hubs at once

One run's CPU per spawn drifts by a fifth here from one minute to the next; with
``--together`` both hubs run at the same time (each its own fake API, pod addresses and
load process, the loads started and ended together), so the ratio compares seconds the
machine spent in the same state.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hubprocess import HubProcess  # noqa: E402
from tests.k8s_fake import FakeKube  # noqa: E402
from tests.k8s_fake.lightpods import LightKubelet  # noqa: E402

NAMESPACE = "scale"
SPAWNERS = {
    "kubespawner": "kubespawner.KubeSpawner",
    "pangeo-kubernetes": "pangeohub.spawner.kubernetes.PangeoKubeSpawner",
}
GROUPS = [f"pangeo-data:team{i}" for i in range(10)] + ["pangeo-data:climate"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def people(n: int) -> list[str]:
    return [f"p{i:04d}" for i in range(n)]


def hub_config(fake: FakeKube, spawner: str, n: int, extra: str = "") -> str:
    """The admin's file for one run: N people in groups, KubeSpawner on the fake API."""
    users = {"ada": {"admin": True, "groups": ["pangeo-data:hub-admins"]}}
    for i, name in enumerate(people(n)):
        users[name] = {"groups": [GROUPS[i % len(GROUPS)], GROUPS[(i * 7 + 3) % len(GROUPS)]]}
    return f"""
c.LocalGroupsAuthenticator.users = {users!r}
c.JupyterHub.spawner_class = {spawner!r}
c.JupyterHub.cleanup_servers = False
c.KubeSpawner.k8s_api_host = {fake.url!r}
c.KubeSpawner.namespace = {NAMESPACE!r}
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.image = "pangeo/base-notebook:2024.01.01"
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "2Gi"
c.KubeSpawner.volumes = [
    {{"name": "home", "persistentVolumeClaim": {{"claimName": "{{pvc_name}}"}}}}
]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
c.KubeSpawner.start_timeout = 300
c.KubeSpawner.http_timeout = 120
# On a saturated machine the hub's own event loop stalls for seconds: not an API failure.
c.KubeSpawner.k8s_api_request_timeout = 15
c.KubeSpawner.events_enabled = True
c.PangeoPolicy.default_image = "pangeo/base-notebook:2024.01.01"
c.CullingPolicy.every = 3600
{extra}
"""


@dataclass
class Run:
    label: str
    n: int
    spawn: list[float] = field(default_factory=list)
    probes: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cpu: float = 0.0
    cpu_system: float = 0.0
    rss_mib: float = 0.0
    hwm_mib: float = 0.0
    cull_pass: float = 0.0
    running: int = 0
    wall: float = 0.0

    @property
    def cpu_per_spawn(self) -> float:
        """Hub CPU seconds per server started (refused starts cost the hub too)."""
        return self.cpu / max(len(self.spawn), 1)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user + system, system) CPU seconds the process has used (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    user, system = int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK
    return user + system, system


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of the process, in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def xsrf_cookie(session: aiohttp.ClientSession) -> str:
    return next((c.value for c in session.cookie_jar if c.key == "_xsrf"), "")


async def person(url: str, name: str, password: str, run: Run, timeout: float) -> None:
    """Sign in through the form, start the default server, wait for it, then visit it."""
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    # unsafe=True: keep cookies set by an IP address (the hub is on 127.0.0.1)
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(timeout=client_timeout, cookie_jar=jar) as session:
        try:
            async with session.get(f"{url}/hub/login") as response:
                response.raise_for_status()
            form = {"username": name, "password": password, "_xsrf": xsrf_cookie(session)}
            async with session.post(
                f"{url}/hub/login", data=form, allow_redirects=False
            ) as response:
                if response.status != 302:
                    raise RuntimeError(f"sign-in {response.status}")
            headers = {"X-XSRFToken": xsrf_cookie(session)}  # signing in renews it
            api = f"{url}/hub/api/users/{name}/server"
            started = time.perf_counter()
            async with session.post(api, json={}, headers=headers) as response:
                if response.status not in (201, 202):
                    raise RuntimeError(f"start {response.status} {(await response.text())[:200]}")
            await wait_ready(session, f"{api}/progress", headers)
            run.spawn.append(time.perf_counter() - started)
            async with session.get(f"{url}/user/{name}/api", allow_redirects=False) as response:
                if response.status != 200:
                    raise RuntimeError(f"server answered {response.status} through the proxy")
        except Exception as error:  # every failure is counted and named in the report
            run.failed.append(f"{name}: {type(error).__name__} {error}"[:300])


async def wait_ready(session: aiohttp.ClientSession, url: str, headers: dict) -> None:
    """Follow the spawn progress event stream (as the spawn page does) until ready."""
    async with session.get(url, headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"progress {response.status}")
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("ready"):
                return
            if event.get("failed"):
                raise RuntimeError(f"spawn failed: {event.get('message', '')[:200]}")
    raise RuntimeError("progress stream ended before the server was ready")


async def probe(url: str, token: str, run: Run, every: float, stop: asyncio.Event) -> None:
    """The hub API's latency while people arrive: GET /hub/api/users/ada every ``every`` s."""
    headers = {"Authorization": f"token {token}"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(f"{url}/hub/api/users/ada", headers=headers) as response:
                await response.read()
                if response.status == 200:
                    run.probes.append(time.perf_counter() - started)
            try:
                await asyncio.wait_for(stop.wait(), every)
            except TimeoutError:
                pass


async def load(url: str, passwords: dict, run: Run, rate: float, token: str, args) -> None:
    stop = asyncio.Event()
    prober = asyncio.create_task(probe(url, token, run, args.probe_every, stop))
    tasks = []
    began = time.perf_counter()
    for i, name in enumerate(people(run.n)):
        # a steady arrival rate, as hubtraf does: person i arrives at i / rate seconds
        await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(person(url, name, passwords[name], run, args.timeout)))
    await asyncio.gather(*tasks)
    run.wall = time.perf_counter() - began
    stop.set()
    await prober


def load_process(url: str, passwords: dict, run: Run, rate: float, token: str, args) -> Run:
    """The load, in its own process: the fake API's thread and the people do not share a GIL."""
    asyncio.run(load(url, passwords, run, rate, token, args))
    return run


async def cull_pass(hub: HubProcess, token: str, pangeohub: bool) -> float:
    """Seconds for one pass of the idle culler over every user (nobody is culled)."""
    import jupyterhub_idle_culler as culler

    from pangeohub.culling import CullArbiter

    log = logging.getLogger("bench.culler")
    kwargs = {}
    if pangeohub:
        kwargs["cull_arbiter"] = CullArbiter(
            log, cull_admin_servers=False, api_url=f"{hub.url}/hub/api", token=token
        )
    started = time.perf_counter()
    await culler.cull_idle(f"{hub.url}/hub/api", token, 30 * 24 * 3600, log, **kwargs)
    return time.perf_counter() - started


def warm_up(hub: HubProcess) -> str:
    """The admin's token, and the admin's own server started (the spawner's shared
    reflectors load at a hub's first start: a fixed cost, kept out of the per-spawn figure)."""
    admin = hub.login("ada")
    response = hub.api(admin, "post", "/users/ada/tokens", json={"note": "bench"})
    response.raise_for_status()
    started = hub.api(admin, "post", "/users/ada/server", json={})
    if started.status_code not in (201, 202):
        raise SystemExit(f"warm-up start: {started.status_code} {started.text[:300]}")
    hub.wait_for_server(admin, "ada", timeout=120)
    return response.json()["token"]


def running_servers(hub: HubProcess, token: str) -> int:
    """Servers ready, the admin's excluded (the API answers in pages)."""
    import requests

    count, offset = 0, 0
    while True:
        response = requests.get(
            f"{hub.url}/hub/api/users",
            params={"state": "ready", "offset": offset, "limit": 200},
            headers={"Authorization": f"token {token}"},
            timeout=120,
        )
        response.raise_for_status()
        page = response.json()
        count += sum(len(u.get("servers", {})) for u in page if u["name"] != "ada")
        if len(page) < 200:
            return count
        offset += len(page)


def one_run(
    label: str,
    n: int,
    rate: float,
    workdir: Path,
    args,
    pod_network: int = 0,
    together: threading.Barrier | None = None,
) -> Run:
    """One hub with ``label``'s spawner, N people. With ``together``, the load and the
    measures start and end at the same time as the other run's (``--together``)."""
    run = Run(label, n)
    with FakeKube(
        namespace=NAMESPACE,
        cpu="100000",
        memory="10000Ti",
        history=max(20000, 20 * n),
        kubelet_class=LightKubelet,
        pod_network=pod_network,
    ) as fake:
        hub = HubProcess(
            workdir / f"{label}-{n}",
            extra_config=hub_config(fake, SPAWNERS[label], n, args.extra_config),
            env={"KUBECONFIG": str(fake.kubeconfig)},
        )
        hub.start(timeout=120)
        try:
            token = warm_up(hub)
            pid = hub.proc.pid
            spy = (
                profiler(
                    pid, Path(args.py_spy) / f"{label}-{n}.txt", args.py_spy_gil, args.py_spy_rate
                )
                if args.py_spy
                else None
            )
            meet(together)
            cpu_before = cpu_seconds(pid)
            passwords = hub.passwords()
            context = multiprocessing.get_context("spawn")
            with context.Pool(1) as pool:
                run = pool.apply(load_process, (hub.url, passwords, run, rate, token, args))
            cpu_after = cpu_seconds(pid)
            run.cpu = cpu_after[0] - cpu_before[0]
            run.cpu_system = cpu_after[1] - cpu_before[1]
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            meet(together)  # the other hub's load has ended too: its cull pass is alone
            run.rss_mib, run.hwm_mib = memory_mib(pid)
            run.running = running_servers(hub, token)
            run.cull_pass = asyncio.run(cull_pass(hub, token, label != "kubespawner"))
            if args.profile_dir:
                Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
                (Path(args.profile_dir) / f"{label}-{n}.log").write_text(hub.log_tail(4000))
        finally:
            hub.stop()
            kill_hub_helpers(hub)
    return run


def meet(together: threading.Barrier | None) -> None:
    """Wait for the other run of a pair to reach the same point (not if it failed)."""
    if together is not None:
        try:
            together.wait(timeout=600)
        except threading.BrokenBarrierError:
            pass


def kill_hub_helpers(hub: HubProcess) -> None:
    """End this hub's proxy and services if they outlived it (each has its own session)."""
    proxy_flag = f"--api-port\0{hub.proxy_api_port}\0".encode()
    api_url = f"JUPYTERHUB_API_URL=http://127.0.0.1:{hub.hub_port}/hub/api".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if proxy_flag in cmdline or api_url in environ.split(b"\0"):
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def profiler(pid: int, output: Path, gil: bool = False, rate: int = 50) -> subprocess.Popen:
    """py-spy sampling the hub during the load (collapsed stacks; `pip install py-spy`);
    with ``gil``, only while the hub holds the GIL (its CPU, not its waits on disk or locks)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(pid)]
        + ["--format", "raw", "--rate", str(rate), "--nonblocking", "--output", str(output)]
        + (["--gil"] if gil else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def pooled(a: Run, b: Run) -> Run:
    """Two runs of one spawner and size as one: CPU over all their spawns, quantiles over
    all their samples (the machine's noise averages out over alternating runs)."""
    return Run(
        a.label,
        a.n,
        spawn=a.spawn + b.spawn,
        probes=a.probes + b.probes,
        failed=a.failed + b.failed,
        cpu=a.cpu + b.cpu,
        cpu_system=a.cpu_system + b.cpu_system,
        rss_mib=max(a.rss_mib, b.rss_mib),
        hwm_mib=max(a.hwm_mib, b.hwm_mib),
        cull_pass=max(a.cull_pass, b.cull_pass),
        running=min(a.running, b.running),
        wall=a.wall + b.wall,
    )


def report_line(run: Run) -> str:
    return (
        f"{run.label:>18} N={run.n:<5} spawn p50 {quantile(run.spawn, 0.5):6.2f}s"
        f" p99 {quantile(run.spawn, 0.99):6.2f}s"
        f"  API p99 {1000 * quantile(run.probes, 0.99):7.1f}ms"
        f"  CPU/spawn {1000 * run.cpu_per_spawn:6.1f}ms"
        f" (system {100 * run.cpu_system / max(run.cpu, 1e-9):3.0f}%)"
        f"  cull pass {run.cull_pass:6.2f}s"
        f"  RSS {run.rss_mib:6.0f} MiB  running {run.running}  failed {len(run.failed)}"
        f"  ({run.wall:.0f}s)"
    )


def run_together(labels: list[str], n: int, workdir: Path, args) -> list[tuple[str, Run]]:
    """Both spawners' runs at once, each on its own fake API and pod addresses: the
    people of both arrive at the same rate over the same seconds."""
    together = threading.Barrier(len(labels))
    with concurrent.futures.ThreadPoolExecutor(len(labels)) as pool:
        futures = [
            pool.submit(one_run, label, n, args.rate, workdir, args, network + 1, together)
            for network, label in enumerate(labels)
        ]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        if any(f.done() and f.exception() is not None for f in futures):
            together.abort()  # the other run stops waiting for it
        runs = [future.result() for future in futures]
    return list(zip(labels, runs, strict=True))


def main(argv: list[str] | None = None) -> dict[tuple[str, int], Run]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rate", type=float, default=2.0, help="sign-ins per second")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per person")
    parser.add_argument("--probe-every", type=float, default=0.5)
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per spawner and size, alternating, pooled"
    )
    parser.add_argument(
        "--together",
        action="store_true",
        help="run both spawners' hubs at the same time, so the machine's drift is shared",
    )
    parser.add_argument("--only", choices=list(SPAWNERS), help="run one spawner (no ratios)")
    parser.add_argument("--extra-config", default="", help="more hub config lines, both runs")
    parser.add_argument("--profile-dir", default="", help="keep each hub's log tail here")
    parser.add_argument("--py-spy", default="", help="profile each hub with py-spy, into here")
    parser.add_argument("--py-spy-rate", type=int, default=50, help="py-spy samples a second")
    parser.add_argument(
        "--py-spy-gil", action="store_true", help="sample only while the hub holds the GIL"
    )
    args = parser.parse_args(argv)

    labels = [args.only] if args.only else list(SPAWNERS)
    runs: dict[tuple[str, int], Run] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        turn = 0
        for n in args.users:
            for _ in range(args.repeat):
                workdir = Path(tmp) / f"turn{turn}"  # each run's hub has its own state
                if args.together:
                    done = run_together(labels, n, workdir, args)
                else:
                    # alternate which spawner goes first, so the machine's state favours neither
                    order = labels if turn % 2 == 0 else list(reversed(labels))
                    done = ((label, one_run(label, n, args.rate, workdir, args)) for label in order)
                for label, run in done:
                    print(report_line(run), flush=True)
                    for failure in run.failed[:5]:
                        print(f"    failed: {failure}", flush=True)
                    runs[label, n] = pooled(runs[label, n], run) if (label, n) in runs else run
                turn += 1
        if args.repeat > 1:
            print(f"\npooled over {args.repeat} runs each")
            for run in runs.values():
                print(report_line(run), flush=True)

    if len(labels) == 2:
        print("\nratio = pangeo-kubernetes / kubespawner (1.00 = the same)")
        for n in args.users:
            ours, base = runs["pangeo-kubernetes", n], runs["kubespawner", n]
            print(
                f"  N={n:<5} CPU/spawn {ours.cpu_per_spawn / base.cpu_per_spawn:5.2f}"
                f"  spawn p50 {quantile(ours.spawn, 0.5) / quantile(base.spawn, 0.5):5.2f}"
                f"  p99 {quantile(ours.spawn, 0.99) / quantile(base.spawn, 0.99):5.2f}"
                f"  API p99 {quantile(ours.probes, 0.99) / quantile(base.probes, 0.99):5.2f}"
                f"  cull pass {ours.cull_pass / base.cull_pass:5.2f}"
                f"  RSS {ours.rss_mib / base.rss_mib:5.2f}"
            )
    if len(args.users) > 1:
        small, large = args.users[0], args.users[-1]
        print(f"\ngrowth = CPU per spawn at N={large} / at N={small} (1.00 = flat)")
        for label in labels:
            ratio = runs[label, large].cpu_per_spawn / runs[label, small].cpu_per_spawn
            print(f"  {label:>18} {ratio:5.2f}")
    return runs


if __name__ == "__main__":
    main()
