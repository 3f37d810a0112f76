"""Dask Gateway on the fake Kubernetes cluster: ``GatewayCluster()`` to a first result
(one worker) and ``scale(10)`` to ten ready workers, pangeohub's PangeoKubeBackend vs
dask-gateway's plain KubeBackend.

One run, one stack (tests/kubernetes/test_gateway.py: the chart's gateway and
controller as pods, the real hub for authentication, dask-gateway-proxy for traefik).
Both backends get the same image, worker size, idle timeout and limits high enough not
to bind; the gateway pod is switched between them (a rollout); after one warm-up round
of each (not counted), rounds alternate which backend goes first.
Medians are printed with the ratio pangeohub / plain (goal: at most 1.05).

    .venv/bin/python benchmarks/bench_gateway_kubernetes.py --rounds 2
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

from tests.gateway.test_gateway_hub import close, shutdown  # noqa: E402
from tests.kubernetes.test_gateway import running_stack  # noqa: E402

ROOMY = {
    "gateway": {
        "extraConfig": {
            "zzz-bench": (
                'c.GatewayPolicy.user_limits = {"clusters": 2, "workers": 20, '
                '"cores": 40, "memory": "40G"}\n'
            )
        }
    }
}
PANGEOHUB: dict = {}
PLAIN = {
    "gateway": {
        "extraConfig": {
            "zzzz-plain": (
                "c.DaskGateway.backend_class = "
                '"dask_gateway_server.backends.kubernetes.KubeBackend"\n'
                'c.KubeClusterConfig.image = "pangeo/pangeo-notebook:2024.01.01"\n'
                'c.KubeClusterConfig.worker_memory = "512 M"\n'
                "c.KubeClusterConfig.idle_timeout = 3600\n"
            )
        }
    }
}


def one_round(stack, workers: int) -> tuple[float, float]:
    gateway = stack.gateway("grace")
    try:
        start = time.perf_counter()
        cluster = gateway.new_cluster()
        cluster.scale(1)
        client = cluster.get_client()
        assert client.submit(sum, [1, 2, 3]).result() == 6
        first = time.perf_counter() - start
        start = time.perf_counter()
        cluster.scale(workers)
        client.wait_for_workers(workers, timeout=600)
        scaled = time.perf_counter() - start
        shutdown(cluster)
        stack.wait_gone(cluster.name, timeout=120)
        return first, scaled
    finally:
        close(gateway)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds")
    parser.add_argument("--workers", type=int, default=10)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"pangeohub": [], "plain": []}
    with tempfile.TemporaryDirectory() as tmp, running_stack(Path(tmp), ROOMY) as stack:
        backends = [("pangeohub", PANGEOHUB), ("plain", PLAIN)]
        for _name, values in backends:  # warm-up: first pulls, imports, caches
            stack.restart_gateway(values)
            one_round(stack, args.workers)
        for i in range(args.rounds):
            # Alternate which goes first (ABBA), so neither gets the warmer machine.
            for name, values in backends if i % 2 else backends[::-1]:
                stack.restart_gateway(values)
                results[name].append(one_round(stack, args.workers))
                print(
                    f"{name}: first result {results[name][-1][0]:.2f} s, "
                    f"scale({args.workers}) {results[name][-1][1]:.2f} s",
                    flush=True,
                )
    for i, what in enumerate(
        ("GatewayCluster() to first result", f"scale({args.workers}) to ready")
    ):
        pangeo = statistics.median(r[i] for r in results["pangeohub"])
        plain = statistics.median(r[i] for r in results["plain"])
        print(f"{what}: pangeohub {pangeo:.2f} s, plain {plain:.2f} s, ratio {pangeo / plain:.2f}")


if __name__ == "__main__":
    main()
