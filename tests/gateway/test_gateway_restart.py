"""The gateway keeps its state in a database file: a running cluster survives the
gateway dying and is still usable once it is back. (The real dask-gateway-server
with pangeohub's service config; simple authentication stands in for the hub here, the
end-to-end tests cover JupyterHub authentication.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from dask_gateway import Gateway
from dask_gateway.auth import BasicAuth

from ..dask_clients import close, new_gateway
from ..hubprocess import free_port, stop_process_group, wait_for_http
from .test_gateway_hub import kill_marked

REPO = Path(__file__).resolve().parents[2]
SERVICE_CONFIG = REPO / "pangeohub" / "gateway" / "local_gateway_config.py"


def hub_settings(marker: str) -> dict:
    """What the hub would write to <state>/services/dask-gateway.json."""
    return {
        "DaskGateway": {"authenticator_class": "dask_gateway_server.auth.SimpleAuthenticator"},
        "GatewayPolicy": {
            "worker_memory": {"min": "256M", "max": "1G", "default": "512M"},
            "environment": {"PANGEOHUB_TEST_GATEWAY": marker},
        },
        "ClusterConfig": {"scheduler_memory": "256 M"},
    }


class Gateway1:
    """dask-gateway-server as the hub would start it, minus the hub."""

    def __init__(self, workdir: Path, marker: str):
        self.port, self.tcp_port = free_port(), free_port()
        self.address = f"http://127.0.0.1:{self.port}/services/dask-gateway"
        settings = workdir / "state" / "services" / "dask-gateway.json"
        settings.parent.mkdir(parents=True)
        settings.write_text(json.dumps(hub_settings(marker)))
        self.env = dict(
            os.environ,
            JUPYTERHUB_SERVICE_NAME="dask-gateway",
            PANGEOHUB_STATE_DIR=str(workdir / "state"),
        )
        self.command = [
            sys.executable,
            "-m",
            "dask_gateway_server",
            "-f",
            str(SERVICE_CONFIG),
            f"--Proxy.address=127.0.0.1:{self.port}",
            f"--Proxy.tcp_address=127.0.0.1:{self.tcp_port}",
            "--Proxy.prefix=/services/dask-gateway",
        ]
        self.log = workdir / "gateway.log"
        self.proc = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        if wait_for_http(f"{self.address}/api/health", 60):
            return
        raise AssertionError(self.log.read_text()[-3000:])

    def kill(self) -> None:
        """The gateway (and its proxy) die at once; the clusters' processes do not."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process_group(self.proc)

    def client(self) -> Gateway:
        return new_gateway(
            self.address,
            proxy_address=f"gateway://127.0.0.1:{self.tcp_port}",
            auth=BasicAuth("ada", ""),
        )


@pytest.mark.e2e
def test_a_running_cluster_survives_the_gateway_dying(tmp_path):
    marker = uuid.uuid4().hex
    server = Gateway1(tmp_path, marker)
    client = None
    try:
        server.start()
        client = server.client()
        name = client.submit()
        cluster = client.connect(name)
        cluster.scale(1)
        dask = cluster.get_client(set_as_default=False)
        assert dask.submit(lambda x: x + 1, 1).result(timeout=60) == 2
        dask.close()
        cluster.close(shutdown=False)
        cluster.gateway.__dict__.pop("_loop_runner", None)
        close(client)

        server.kill()
        assert (tmp_path / "state" / "dask-gateway" / "gateway.sqlite").exists()
        server.start()

        client = server.client()
        assert [c.name for c in client.list_clusters()] == [name]
        again = client.connect(name)
        dask = again.get_client(set_as_default=False)
        assert dask.submit(lambda x: x * 3, 7).result(timeout=60) == 21
        dask.close()
        again.shutdown()
        again.gateway.__dict__.pop("_loop_runner", None)
    finally:
        if client is not None:
            close(client)
        server.stop()
        kill_marked(f"PANGEOHUB_TEST_GATEWAY={marker}".encode())
