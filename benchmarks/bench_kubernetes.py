"""Kubernetes spawner: spawn-to-ready and stop for N servers through the real hub, with
pangeo-kubernetes vs plain KubeSpawner, on the fake Kubernetes API (tests/k8s_fake).

Both hubs are the real jupyterhub + configurable-http-proxy with pangeohub's config, the
same KubeSpawner settings (namespace, per-server claim and volume, timeouts, command);
only the spawner class differs, so the difference is what pangeohub adds: group-filtered
profiles, option checks, claim look-up, environment hooks, the start watchdog. Each pod
runs JupyterHub's minimal mock single-user server (``--singleuser`` for the real one).
Both hubs run side by side (one namespace each) and rounds alternate between them. For
each N the admin starts N named servers at once and waits until all are ready, then
deletes them all (with their claims) and waits until all are gone; medians are printed
with the ratio pangeo-kubernetes / kubespawner.

    .venv/bin/python benchmarks/bench_kubernetes.py --servers 10 50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hubprocess import HubProcess  # noqa: E402
from tests.k8s_fake import FakeKube  # noqa: E402

NAMESPACE = "bench"
SPAWNERS = {
    "kubespawner": "kubespawner.KubeSpawner",
    "pangeo-kubernetes": "pangeohub.spawner.kubernetes.PangeoKubeSpawner",
}


def hub_config(fake: FakeKube, spawner: str, namespace: str, real_singleuser: bool) -> str:
    cmd = (
        ["jupyterhub-singleuser"]
        if real_singleuser
        else ["python", "-m", "jupyterhub.tests.mocksu"]
    )
    return f"""
c.JupyterHub.spawner_class = {spawner!r}
c.KubeSpawner.k8s_api_host = {fake.url!r}
c.KubeSpawner.namespace = {namespace!r}
c.KubeSpawner.cmd = {cmd!r}
c.KubeSpawner.image = "pangeo/base-notebook:2024.01.01"
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.storage_capacity = "2Gi"
c.KubeSpawner.volumes = [
    {{"name": "home", "persistentVolumeClaim": {{"claimName": "{{pvc_name}}"}}}}
]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
c.KubeSpawner.start_timeout = 300
c.KubeSpawner.http_timeout = 120
c.KubeSpawner.delete_grace_period = 1
c.KubeSpawner.events_enabled = True
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.init_spawners_timeout = 1
c.PangeoPolicy.default_image = "pangeo/base-notebook:2024.01.01"
c.PangeoPolicy.named_server_limit = 0
"""


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"benchmark: {what} not reached in {timeout}s")


def run(hub: HubProcess, n: int, tag: str) -> tuple[float, float]:
    """Start n named servers for the admin at once; time to all ready, then to all deleted."""
    admin = hub.login("ada")
    names = [f"{tag}{i}" for i in range(n)]

    def servers() -> dict:
        return hub.api(admin, "get", "/users/ada").json().get("servers", {})

    start = time.perf_counter()
    for name in names:
        response = hub.api(admin, "post", f"/users/ada/servers/{name}", json={})
        if response.status_code not in (201, 202):
            raise SystemExit(f"spawn {name}: {response.status_code} {response.text[:300]}")
    wait(lambda: sum(bool(s.get("ready")) for s in servers().values()) == n, 600, "all ready")
    spawn = time.perf_counter() - start

    start = time.perf_counter()
    for name in names:
        hub.api(admin, "delete", f"/users/ada/servers/{name}", json={"remove": True})
    wait(lambda: not servers(), 600, "all deleted")
    stop = time.perf_counter() - start
    return spawn, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per N")
    parser.add_argument("--singleuser", action="store_true", help="run real jupyterhub-singleuser")
    args = parser.parse_args()

    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    with FakeKube(namespace=NAMESPACE, cpu="1000", memory="4Ti") as fake:
        hubs: dict[str, HubProcess] = {}
        with tempfile.TemporaryDirectory() as tmp:
            try:
                for label, spawner in SPAWNERS.items():
                    namespace = f"{NAMESPACE}-{label}"
                    fake.create("namespaces", {"metadata": {"name": namespace}})
                    hubs[label] = HubProcess(
                        Path(tmp) / label,
                        extra_config=hub_config(fake, spawner, namespace, args.singleuser),
                        env={"KUBECONFIG": str(fake.kubeconfig)},
                    ).start()
                for n in args.servers:
                    for r in range(args.rounds):
                        # alternate which spawner goes first, so warm-up favours neither
                        order = list(hubs) if r % 2 == 0 else list(reversed(hubs))
                        for label in order:
                            spawn, stop = run(hubs[label], n, f"r{r}n{n}x")
                            results.setdefault((label, n), []).append((spawn, stop))
                            print(
                                f"{label:>18} N={n:<3} round {r}: spawn-to-ready {spawn:7.2f}s"
                                f"  stop+delete {stop:7.2f}s",
                                flush=True,
                            )
            finally:
                for hub in hubs.values():
                    hub.stop()
        for label in hubs:
            namespace = f"{NAMESPACE}-{label}"
            left = fake.list("pods", namespace) + fake.list("persistentvolumeclaims", namespace)
            if left:
                print(f"warning: {len(left)} pods/claims left in {namespace}")

    print("\nmedian seconds; ratio = pangeo-kubernetes / kubespawner (1.00 = same time)")
    for n in args.servers:
        base = [statistics.median(x) for x in zip(*results["kubespawner", n], strict=True)]
        ours = [statistics.median(x) for x in zip(*results["pangeo-kubernetes", n], strict=True)]
        print(
            f"  N={n:<3} spawn-to-ready {base[0]:7.2f} vs {ours[0]:7.2f}"
            f"  ratio {ours[0] / base[0]:5.2f}"
            f"   stop {base[1]:6.2f} vs {ours[1]:6.2f}  ratio {ours[1] / base[1]:5.2f}"
        )


if __name__ == "__main__":
    main()
