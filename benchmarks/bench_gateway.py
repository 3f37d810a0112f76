"""Dask Gateway: time from ``GatewayCluster()`` to a computed result on 2 workers, and
to a completed shutdown, with pangeohub's gateway config vs plain dask-gateway-server.

Both gateways run here as real dask-gateway-server processes on loopback with the
local backend, the same scheduler/worker commands, heartbeat period and worker size,
and simple (password-less) authentication, so the difference is what pangeohub adds:
per-group options, per-user limits, the environment and the database file. Rounds
alternate between the two; medians are printed with the ratio pangeohub / plain.

    .venv/bin/python benchmarks/bench_gateway.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from dask_gateway import Gateway, GatewayCluster
from dask_gateway.auth import BasicAuth

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hubprocess import free_port, wait_for_http  # noqa: E402

SERVICE_CONFIG = REPO / "services" / "dask-gateway" / "dask_gateway_config.py"

COMMON = f"""
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.ClusterConfig.scheduler_cmd = [{sys.executable!r}, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [{sys.executable!r}, "-m", "distributed.cli.dask_worker"]
c.ClusterConfig.worker_memory = "512 M"
c.ClusterConfig.scheduler_memory = "512 M"
c.DBBackendBase.cluster_heartbeat_period = 5
c.DBBackendBase.stop_clusters_on_shutdown = True
"""

PLAIN = """
c = get_config()  # noqa
import os
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.Proxy.address = os.environ["BENCH_ADDRESS"]
c.Proxy.tcp_address = os.environ["PANGEOHUB_GATEWAY_TCP_ADDRESS"]
c.Proxy.prefix = "/services/dask-gateway"
"""

PANGEOHUB = """
c = get_config()  # noqa
c.GatewayPolicy.worker_memory = {"min": "256M", "max": "1G", "default": "512M"}
c.GatewayPolicy.environment = {"PANGEO_SCRATCH": "file:///scratch/{username}/"}
"""


class GatewayProcess:
    """One dask-gateway-server process on loopback."""

    def __init__(self, name: str, workdir: Path, pangeohub: bool):
        self.name = name
        port, tcp_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{port}/services/dask-gateway"
        self.proxy_address = f"gateway://127.0.0.1:{tcp_port}"
        workdir.mkdir(parents=True)
        env = dict(
            os.environ,
            BENCH_ADDRESS=f"127.0.0.1:{port}",
            PANGEOHUB_GATEWAY_TCP_ADDRESS=f"127.0.0.1:{tcp_port}",
            JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}",
            JUPYTERHUB_SERVICE_PREFIX="/services/dask-gateway/",
            PANGEOHUB_STATE_DIR=str(workdir / "state"),
        )
        if pangeohub:
            override = workdir / "override.py"
            override.write_text(PANGEOHUB + textwrap.dedent(COMMON))
            env["PANGEOHUB_GATEWAY_CONFIG"] = str(override)
            config = SERVICE_CONFIG
        else:
            config = workdir / "plain_config.py"
            config.write_text(PLAIN + textwrap.dedent(COMMON))
        self.log = open(workdir / "gateway.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dask_gateway_server", "-f", str(config)],
            env=env,
            cwd=workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait_for_http(f"{self.address}/api/health", 60):
            return
        self.stop()
        raise SystemExit(f"{name} gateway did not start; see {workdir / 'gateway.log'}")

    def round(self) -> tuple[float, float]:
        """Seconds to a computed result on 2 workers, and to a stopped cluster."""
        auth = BasicAuth("bench", "")
        start = time.perf_counter()
        cluster = GatewayCluster(self.address, proxy_address=self.proxy_address, auth=auth)
        cluster.scale(2)
        client = cluster.get_client(set_as_default=False)
        client.wait_for_workers(2, timeout=120)
        assert client.submit(sum, client.map(lambda x: x * x, range(100))).result() == 328350
        ready = time.perf_counter() - start
        client.close()
        name = cluster.name
        start = time.perf_counter()
        cluster.shutdown()
        # dask_gateway's __del__ would close the cluster's client again, on a stopped loop.
        cluster.gateway.__dict__.pop("_loop_runner", None)
        gateway = Gateway(self.address, proxy_address=self.proxy_address, auth=auth)
        try:
            deadline = time.monotonic() + 60
            while gateway.get_cluster(name).status.name not in ("STOPPED", "FAILED"):
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.name}: cluster {name} did not stop")
                time.sleep(0.05)
        finally:
            gateway.close()
            gateway.__dict__.pop("_loop_runner", None)
        return ready, time.perf_counter() - start

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        gateways = [
            GatewayProcess("plain", Path(tmp) / "plain", pangeohub=False),
            GatewayProcess("pangeohub", Path(tmp) / "pangeohub", pangeohub=True),
        ]
        times: dict[str, list[tuple[float, float]]] = {g.name: [] for g in gateways}
        try:
            for gateway in gateways:  # warm-up: imports, first scheduler start
                gateway.round()
            for _ in range(args.rounds):
                for gateway in gateways:
                    times[gateway.name].append(gateway.round())
        finally:
            for gateway in gateways:
                gateway.stop()
    medians = {
        name: tuple(statistics.median(t[i] for t in rounds) for i in (0, 1))
        for name, rounds in times.items()
    }
    print(f"{'config':<10} {'to result (s)':>14} {'shutdown (s)':>13}   ({args.rounds} rounds)")
    for name, (ready, stop) in medians.items():
        print(f"{name:<10} {ready:>14.2f} {stop:>13.2f}")
    (p_ready, p_stop), (b_ready, b_stop) = medians["pangeohub"], medians["plain"]
    print(
        f"ratio pangeohub/plain: to result {p_ready / b_ready:.2f}x, "
        f"shutdown {p_stop / b_stop:.2f}x"
    )


if __name__ == "__main__":
    main()
