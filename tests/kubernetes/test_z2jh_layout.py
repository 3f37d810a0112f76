"""The hub-managed services' proxy routes under the chart's layout (issue 27).

Under Zero to JupyterHub the proxy runs in a pod of its own and reaches the hub through
the hub's Service (``hub_connect_url = http://hub:8081``); a service the hub runs (the
scratch service, listening on all of the hub pod's addresses, ``http://0.0.0.0:10101``)
must be routed at that address, not at the hub pod's loopback. Here the hub runs as the
chart configures it, in a network namespace of its own (where listening on every
address reaches nothing else, and the name ``hub`` resolves to another loopback address
than the hub's 127.0.0.1), and the routing table is read from the proxy's API.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from tests.hubprocess import VENV_BIN, stop_process_group

from .z2jh_chart import REPO, write_config_d

HUB_SERVICE_IP = "127.0.0.2"  # the hub's Service, as the name "hub" resolves in the pod

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(c) for c in ("unshare", "nsenter", "ip")),
    reason="needs root for a network and mount namespace (unshare, nsenter, ip)",
)


def inside(pid: int, code: str) -> subprocess.CompletedProcess:
    """Run Python ``code`` in the hub's network and mount namespaces."""
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", f"--mount=/proc/{pid}/ns/mnt"]
        + [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
    )


def get(pid: int, url: str, headers: dict | None = None) -> tuple[int, str]:
    code = (
        "import json, urllib.request, urllib.error\n"
        f"request = urllib.request.Request({url!r}, headers={headers or {}!r})\n"
        "try:\n"
        "    r = urllib.request.urlopen(request, timeout=5)\n"
        "    print(json.dumps([r.status, r.read().decode()]))\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(json.dumps([e.code, e.read().decode()]))\n"
    )
    done = inside(pid, code)
    if done.returncode:
        return 0, done.stderr[-500:]
    return tuple(json.loads(done.stdout))


def test_scratch_route_uses_the_hubs_service_address(tmp_path):
    ports = {"public": 18000, "hub": 18081, "proxy_api": 18001}  # the namespace is the hub's
    overlay = {
        "hub": {
            "config": {
                "GitHubTeamsAuthenticator": {"client_secret": "x"},
                "S3ScratchBackend": {"bucket": "pangeo-scratch"},
                "GatewayService": {"enabled": False},  # an external service, not the hub's
            }
        }
    }
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    (tmp_path / "hosts").write_text(f"127.0.0.1 localhost\n{HUB_SERVICE_IP} hub\n")
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PANGEOHUB_STATE_DIR": str(tmp_path / "state"),
        "Z2JH_VALUES": f"{REPO / 'deploy' / 'values.yaml'}{os.pathsep}{tmp_path / 'overlay.yaml'}",
        "Z2JH_CONFIG_D": str(write_config_d(tmp_path / "config.d")),
        "Z2JH_PUBLIC_PORT": str(ports["public"]),
        "Z2JH_HUB_PORT": str(ports["hub"]),
        "Z2JH_PROXY_API_PORT": str(ports["proxy_api"]),
        "Z2JH_HUB_IP": "",  # the chart's http://:8081
        "Z2JH_HUB_SERVICE_HOST": "hub",  # the chart's http://hub:8081
        "POD_NAMESPACE": "pangeo",
        "AWS_EC2_METADATA_DISABLED": "true",  # no cloud here: no credentials, at once
    }
    script = (
        "ip link set lo up && mount --bind {hosts} /etc/hosts && exec {jupyterhub} -f {config}"
    ).format(
        hosts=tmp_path / "hosts",
        jupyterhub=VENV_BIN / "jupyterhub",
        config=REPO / "tests" / "kubernetes" / "z2jh_hub_config.py",
    )
    log = open(tmp_path / "jupyterhub.log", "wb")
    hub = subprocess.Popen(
        ["unshare", "--net", "--mount", "--propagation", "private", "bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    try:
        token = tmp_path / "chart-secret-proxy-token"
        deadline = time.monotonic() + 60
        routes: dict = {}
        while time.monotonic() < deadline and hub.poll() is None:
            if token.exists():
                status, body = get(
                    hub.pid,
                    f"http://127.0.0.1:{ports['proxy_api']}/api/routes",
                    {"Authorization": f"token {token.read_text()}"},
                )
                routes = json.loads(body) if status == 200 else {}
                if "/services/scratch" in routes:
                    break
            time.sleep(0.5)
        log_text = (tmp_path / "jupyterhub.log").read_text(errors="replace")
        assert "/services/scratch" in routes, log_text[-3000:]
        assert routes["/services/scratch"]["target"] == "http://hub:10101"
        assert routes["/"]["target"] == f"http://hub:{ports['hub']}"  # the hub's own route
        # through the proxy, to the service, at the Service's address
        status, body = get(hub.pid, f"http://127.0.0.1:{ports['public']}/services/scratch/health")
        assert status == 200 and json.loads(body)["backend"] == "s3", (status, body)
    finally:
        stop_process_group(hub)
