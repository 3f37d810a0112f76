"""Dask dashboards: what the guard costs. Time to fetch a dashboard's page and its plots'
list through the hub and pangeohub's dashboard guard (signed in with a token) against
the same fetch straight from dask-gateway's proxy on loopback (no guard, no hub proxy).

One real hub (its configurable-http-proxy, the guard, the real dask-gateway-server with
one cluster of a user); requests alternate between the two paths; medians are printed
with the ratio guarded / direct.

    .venv/bin/python benchmarks/bench_dashboards.py --requests 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
from dask_gateway import Gateway
from dask_gateway.auth import JupyterHubAuth

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.gateway.test_gateway_hub import close, shutdown  # noqa: E402
from tests.hubprocess import HubProcess, wait_for_http  # noqa: E402

PREFIX = "/services/dask-gateway"


def timed(session: requests.Session, url: str, headers: dict) -> float:
    start = time.perf_counter()
    for path in ("/status", "/individual-plots.json"):
        response = session.get(url + path, headers=headers, timeout=60)
        if not response.ok:
            raise SystemExit(f"{response.status_code} for {url + path}: {response.text[:300]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dashboards-") as tmp:
        hub = HubProcess(Path(tmp) / "hub")
        with hub:
            if not wait_for_http(f"{hub.url}{PREFIX}/api/health", 60):
                raise SystemExit("the gateway did not come up")
            grace = hub.login("grace")
            made = hub.api(grace, "post", "/users/grace/tokens", json={"note": "bench"})
            token = made.json()["token"]
            gateway = Gateway(f"{hub.url}{PREFIX}", auth=JupyterHubAuth(token))
            cluster = gateway.new_cluster()
            try:
                settings = hub.state_dir / "services" / "dask-dashboards.json"
                upstream = json.loads(settings.read_text())["DashboardGuard"]["upstream"]
                guarded = f"{hub.url}{PREFIX}/clusters/{cluster.name}"
                direct = f"{upstream}{PREFIX}/clusters/{cluster.name}"
                auth = {"Authorization": f"token {token}"}
                if not wait_for_http(f"{direct}/status", 60):
                    raise SystemExit("the cluster's dashboard did not come up")
                session = requests.Session()
                timed(session, guarded, auth), timed(session, direct, {})  # warm up
                through, straight = [], []
                for _ in range(args.requests):
                    through.append(timed(session, guarded, auth))
                    straight.append(timed(session, direct, {}))
            finally:
                shutdown(cluster)
                close(gateway)
    a, b = statistics.median(through), statistics.median(straight)
    print(f"dashboard page + plots list, median of {args.requests}:")
    print(f"  through the hub and the guard: {a * 1000:.1f} ms")
    print(f"  straight from the gateway's proxy: {b * 1000:.1f} ms")
    print(f"  ratio guarded / direct: {a / b:.2f}")


if __name__ == "__main__":
    main()
