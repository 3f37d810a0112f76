"""Dask Gateway end to end: the real hub starts the real dask-gateway-server (local
backend) as a service; the real dask_gateway client computes on it, from inside a
spawned server's environment and from outside with a user's hub API token."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import requests
from dask_gateway import Gateway
from dask_gateway.auth import JupyterHubAuth

from ..dask_clients import close, new_gateway, shutdown
from ..hubprocess import HubProcess, free_port, wait_for_http
from .attacks import forged_heartbeat

pytestmark = pytest.mark.e2e

GATEWAY_MARK = "PANGEOHUB_TEST_GATEWAY"
IMAGE = "example.org/pangeo/climate:2026.11"

# The gateway's settings, in the hub's admin file like every other setting.
GATEWAY_CONFIG = """
c.GatewayPolicy.worker_cores = {{"min": 1, "max": 1, "default": 1}}
c.GatewayPolicy.group_bounds = {{"pangeo-data:climate": {{"worker_cores": {{"max": 2}}}}}}
c.GatewayPolicy.worker_memory = {{"min": "256M", "max": "1G", "default": "512M"}}
c.GatewayPolicy.idle_timeout = {{"min": 0.05, "max": 30, "default": 30}}
c.GatewayPolicy.user_limits = {{"clusters": 2, "workers": 3, "cores": 8, "memory": "8G"}}
c.GatewayPolicy.environment = {{"{mark}": "{marker}"}}
c.ClusterConfig.scheduler_memory = "256 M"
c.PangeoLocalBackend.orphan_check_period = 2
c.PangeoLocalBackend.metrics_token = "{metrics_token}"
"""
METRICS_TOKEN = "metrics-token-for-tests"

# The hub's admin override: a profile with its own image (the gateway must learn it).
HUB_CONFIG = f"""
c.PangeoPolicy.profiles = [
    {{"display_name": "Climate", "slug": "climate", "image": "{IMAGE}", "default": True}},
]
"""


def kill_marked(needle: bytes) -> None:
    """End every process whose environment holds ``needle`` (left-over Dask processes)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


class GatewayHub:
    """The hub, its gateway's addresses, and helpers to act as its users."""

    def __init__(self, hub: HubProcess, scheduler_port: int):
        self.hub = hub
        self.address = f"{hub.url}/services/dask-gateway"
        self.proxy_address = f"gateway://127.0.0.1:{scheduler_port}"
        self.sessions: dict[str, requests.Session] = {}

    def session(self, user: str) -> requests.Session:
        if user not in self.sessions:
            self.sessions[user] = self.hub.login(user)
        return self.sessions[user]

    def token(self, user: str, **body) -> str:
        response = self.hub.api(self.session(user), "post", f"/users/{user}/tokens", json=body)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    def gateway(self, user: str, token: str | None = None) -> Gateway:
        """A client from outside the hub, with a hub API token of ``user``."""
        auth = JupyterHubAuth(token or self.token(user, note="gateway test"))
        return new_gateway(self.address, proxy_address=self.proxy_address, auth=auth)

    def wait_ready(self, timeout: float = 60) -> None:
        if wait_for_http(f"{self.address}/api/health", timeout):
            return
        raise AssertionError(f"the gateway did not answer:\n{self.hub.log_tail()}")

    def server_env(self, user: str, server: str = "") -> dict[str, str]:
        """The environment the hub gave ``user``'s running server."""
        needle = f"JUPYTERHUB_USER={user}".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                items = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            env = dict(i.decode().split("=", 1) for i in items if b"=" in i)
            if (
                needle in items
                and env.get("PANGEOHUB_TEST_HUB") == self.hub.marker
                and env.get("JUPYTERHUB_SERVER_NAME", "") == server
                and "JUPYTERHUB_API_TOKEN" in env
            ):
                return env
        raise AssertionError(f"no server process for {user}/{server}")

    def run_in_server(self, user: str, code: str, server: str = "", timeout: float = 120):
        """Run ``code`` with the server's environment, as a notebook in it would; its
        last stdout line parsed as JSON. ``$TEST_HUB_URL`` is the hub's public URL."""
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env={**self.server_env(user, server), "TEST_HUB_URL": self.hub.url},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("gateway-e2e")
    marker = uuid.uuid4().hex
    scheduler_port = free_port()
    hub = HubProcess(
        workdir / "hub",
        extra_config=HUB_CONFIG
        + GATEWAY_CONFIG.format(mark=GATEWAY_MARK, marker=marker, metrics_token=METRICS_TOKEN)
        + f"c.GatewayService.scheduler_port = {scheduler_port}\n",
    )
    try:
        hub.start()
        gateway_hub = GatewayHub(hub, scheduler_port)
        gateway_hub.wait_ready()
        yield gateway_hub
    finally:
        hub.stop()
        kill_marked(f"{GATEWAY_MARK}={marker}".encode())
        kill_marked(f"PANGEOHUB_STATE_DIR={hub.state_dir}".encode())


def start_server(gw: GatewayHub, user: str, server: str = "") -> None:
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    response = gw.hub.api(gw.session(user), "post", path, json={})
    assert response.status_code in (201, 202), response.text
    gw.hub.wait_for_server(gw.session(user), user, server)


def stop_server(gw: GatewayHub, user: str, server: str = "") -> None:
    path = f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"
    response = gw.hub.api(gw.session(user), "delete", path)
    assert response.status_code in (202, 204), response.text
    gw.hub.wait_for_stop(gw.session(user), user, server)


ZERO_CONFIG = """
    import json, os
    from dask_gateway import Gateway, GatewayCluster

    cluster = GatewayCluster()
    cluster.scale(2)
    client = cluster.get_client()
    client.wait_for_workers(2, timeout=60)
    total = client.submit(sum, client.map(lambda x: x * x, range(100))).result()
    def worker():
        import urllib.request
        token = os.environ["JUPYTERHUB_API_TOKEN"]
        url = os.environ["PANGEO_SCRATCH_SERVICE_URL"] + "credentials"
        request = urllib.request.Request(url, headers={"Authorization": "token " + token})
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
        same = token == server_token
        return [os.environ["JUPYTER_IMAGE_SPEC"], os.environ["PANGEO_SCRATCH"], status, same]

    server_token = os.environ["JUPYTERHUB_API_TOKEN"]
    seen = client.run(worker)
    second = Gateway()
    listed = [c.name for c in second.list_clusters()]
    other = second.connect(cluster.name)
    other_workers = len(other.get_client().scheduler_info()["workers"])
    import urllib.error, urllib.request
    def fetch(url, headers):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as page:
                return [page.status, b"Dask" in page.read()]
        except urllib.error.HTTPError as error:
            return [error.code, False]
    link = os.environ["TEST_HUB_URL"] + cluster.dashboard_link
    # Dashboards are for their owner (docs/security.md): a script signs in with a token.
    dashboard_page = fetch(link, {"Authorization": "token " + server_token})
    anonymous_page = fetch(link, {})
    result = {
        "total": total, "seen": [list(v) for v in seen.values()], "listed": listed,
        "name": cluster.name, "other_workers": other_workers,
        "dashboard": cluster.dashboard_link, "options": dict(second.cluster_options()),
        "dashboard_page": dashboard_page, "anonymous_page": anonymous_page,
    }
    cluster.shutdown()
    result["after"] = [c.name for c in second.list_clusters()]
    print(json.dumps(result))
"""


def worker_token_notes(gw: GatewayHub, user: str) -> list[str]:
    tokens = gw.hub.api(gw.session(user), "get", f"/users/{user}/tokens").json()
    return [t["note"] for t in tokens["api_tokens"] if t["note"].startswith("Dask workers")]


def test_zero_configuration_cluster_from_a_server(gw):
    start_server(gw, "grace")
    env = gw.server_env("grace")
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    assert env["JUPYTER_IMAGE_SPEC"] == IMAGE
    assert worker_token_notes(gw, "grace") == []  # made when a cluster needs it, not before
    out = gw.run_in_server("grace", ZERO_CONFIG)
    assert worker_token_notes(gw, "grace") == ["Dask workers of server /"]
    assert out["total"] == sum(x * x for x in range(100))
    # Workers run the server's image, get its scratch space, and a token of their own
    # (not the server's) that the scratch service accepts.
    assert out["seen"] == [[IMAGE, env["PANGEO_SCRATCH"], 200, False]] * 2
    assert out["listed"] == [out["name"]] and out["other_workers"] == 2
    # The dashboard link goes through the hub, and the hub serves it.
    assert out["dashboard"] == f"/services/dask-gateway/clusters/{out['name']}/status"
    if importlib.util.find_spec("bokeh") is None:
        pytest.skip("bokeh is not installed, so the scheduler serves no dashboard page")
    assert out["dashboard_page"] == [200, True]
    assert out["anonymous_page"] == [401, False]
    assert out["options"]["server"] == "/" and out["options"]["image"] == IMAGE
    assert out["after"] == []


def test_options_outside_the_users_bounds_are_refused(gw):
    grace = gw.gateway("grace")  # pangeo-data:climate: 2-core workers allowed
    katherine = gw.gateway("katherine")
    try:
        assert grace.cluster_options()._fields["worker_cores"].max == 2
        assert katherine.cluster_options()._fields["worker_cores"].max == 1
        refusals = {
            "worker_cores": ({"worker_cores": 2}, "worker_cores=2 is above your maximum of 1"),
            "worker_memory": ({"worker_memory": 4}, "worker_memory=4 GiB is above your maximum"),
            "idle off": ({"idle_timeout": 0}, "idle_timeout=0 minutes is below the minimum"),
            "idle long": ({"idle_timeout": 600}, "idle_timeout=600 minutes is above your max"),
            "image": ({"image": "evil/miner:1"}, "image 'evil/miner:1' is not allowed"),
            "env": ({"environment": {"PANGEO_SCRATCH": "s3://x"}}, "may not set PANGEO_SCRATCH"),
        }
        for options, message in refusals.values():
            with pytest.raises(ValueError, match=message):
                katherine.submit(**options)
        assert katherine.list_clusters() == [], "a refused request left a cluster"
    finally:
        close(grace)
        close(katherine)


def test_over_limit_requests_are_refused_with_what_is_running(gw):
    ada = gw.gateway("ada")
    first = ada.new_cluster()
    second = ada.new_cluster()
    try:
        first.scale(2)
        with pytest.raises(Exception, match="past your limit of 3 workers") as refused:
            second.scale(2)
        message = str(refused.value)
        assert "at most 1 worker for this cluster now" in message
        assert f"{first.name} (2 workers" in message
        with pytest.raises(ValueError, match="at most 2 Dask clusters at once") as refused:
            ada.submit()
        assert "Your 2 running clusters use" in str(refused.value)
        second.scale(1)  # within the limit
        assert {c.name for c in ada.list_clusters()} == {first.name, second.name}
    finally:
        shutdown(first)
        shutdown(second)
        close(ada)


def test_a_forged_heartbeat_cannot_lift_the_worker_limit(gw):
    """Issue 13: the user's scheduler token posts a heartbeat counting -10 workers; the
    limit still counts the workers the backend started."""
    ada = gw.gateway("ada")
    first = ada.new_cluster()
    second = None
    try:
        first.scale(3)
        client = first.get_client()
        client.wait_for_workers(3, timeout=60)
        assert client.run_on_scheduler(forged_heartbeat(-10)) == 200
        second = ada.new_cluster()
        with pytest.raises(Exception, match="past your limit of 3 workers") as refused:
            second.scale(1)
        assert "uses 3 workers" in str(refused.value)
        assert len(client.scheduler_info()["workers"]) == 3
    finally:
        shutdown(first)
        if second is not None:
            shutdown(second)
        close(ada)


def test_metrics_count_each_users_clusters_workers_and_cores(gw):
    url = f"{gw.address}/api/pangeohub/metrics"
    assert requests.get(url, timeout=10).status_code == 403  # they name users: token only

    def metrics() -> str:
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.text

    ada = gw.gateway("ada")
    cluster = ada.new_cluster()
    try:
        cluster.scale(2)
        text = metrics()
        assert 'pangeohub_dask_clusters_by_user{user="ada"} 1.0' in text
        assert 'pangeohub_dask_workers_by_user{user="ada"} 2.0' in text
        assert 'pangeohub_dask_cores_by_user{user="ada"} 3.0' in text  # scheduler + 2 workers
        assert 'pangeohub_dask_workers_by_group{group="pangeo-data:hub-admins"} 2.0' in text
    finally:
        shutdown(cluster)
        close(ada)
    wait_until(lambda: 'user="ada"' not in metrics(), 30, "ada's cluster to leave the metrics")


def test_an_idle_cluster_is_shut_down(gw):
    katherine = gw.gateway("katherine")
    try:
        name = katherine.submit(idle_timeout=0.05)  # 3 seconds
        wait_until(
            lambda: katherine.get_cluster(name).status.name in ("STOPPED", "FAILED"),
            60,
            "the idle cluster to stop",
        )
    finally:
        close(katherine)


KEEP_CLUSTER = """
    import json
    from dask_gateway import Gateway
    print(json.dumps(Gateway().submit()))
"""


def test_stopping_a_server_shuts_down_its_clusters(gw):
    start_server(gw, "katherine", "work")
    from_server = gw.run_in_server("katherine", KEEP_CLUSTER, server="work")
    outside = gw.gateway("katherine")
    try:
        from_outside = outside.submit()
        stop_server(gw, "katherine", "work")
        wait_until(
            lambda: [c.name for c in outside.list_clusters()] == [from_outside],
            60,
            "the server's cluster to stop",
        )
        # The token its workers had is revoked with the server.
        tokens = gw.hub.api(gw.session("katherine"), "get", "/users/katherine/tokens").json()
        notes = [t["note"] for t in tokens["api_tokens"]]
        assert "Dask workers of server /work" not in notes, notes
    finally:
        outside.stop_cluster(from_outside)
        outside.stop_cluster(from_server)
        close(outside)


def test_a_cluster_whose_server_is_gone_is_stopped(gw):
    # E.g. the server stopped while the gateway was down, so the post-stop hook missed it.
    katherine = gw.gateway("katherine")
    try:
        name = katherine.submit(server="/gone")
        wait_until(
            lambda: katherine.get_cluster(name).status.name in ("STOPPED", "FAILED"),
            60,
            "the orphaned cluster to stop",
        )
    finally:
        close(katherine)


def test_a_token_without_the_service_scope_is_refused(gw):
    narrow = gw.token("grace", scopes=["read:users:name!user=grace"])
    client = gw.gateway("grace", token=narrow)
    try:
        with pytest.raises(Exception) as refused:
            client.list_clusters()
        assert getattr(refused.value, "status", None) == 401
    finally:
        close(client)


def test_only_the_gateway_may_ask_for_a_running_servers_workers_token(gw):
    from pangeohub.state import StateDirectory

    url = f"{gw.hub.url}/hub/api/pangeohub/dask-worker-token"
    gateway_token = StateDirectory(gw.hub.state_dir).secret("dask_gateway_api_token")

    def ask(token, body):
        headers = {"Authorization": f"token {token}"}
        return requests.post(url, json=body, headers=headers, timeout=30)

    start_server(gw, "katherine", "tok")
    try:
        body = {"user": "katherine", "server": "/tok"}
        refused = ask(gw.token("katherine"), body)  # her own token: not the gateway's
        assert refused.status_code == 403, refused.text
        assert "Only the Dask Gateway service" in refused.json()["message"]
        for bad in ([], {"user": "katherine"}, {"user": "katherine", "server": "tok"}):
            answer = ask(gateway_token, bad)
            assert answer.status_code == 400, (bad, answer.text)
        for gone in ({"user": "katherine", "server": "/nope"}, {"user": "nobody", "server": "/"}):
            answer = ask(gateway_token, gone)
            assert answer.status_code == 404, (gone, answer.text)
            assert "no running server" in answer.json()["message"]

        made = ask(gateway_token, body)
        assert made.status_code == 201, made.text
        assert made.json()["expires_in"] == 86400
        token = made.json()["token"]
        scopes = requests.get(
            f"{gw.hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30
        ).json()["scopes"]
        own = {"read:users:name!user=katherine", "read:users:groups!user=katherine"}
        assert set(scopes) == {"access:services!service=scratch"} | own  # JupyterHub adds own
        assert worker_token_notes(gw, "katherine") == ["Dask workers of server /tok"]
    finally:
        stop_server(gw, "katherine", "tok")
    assert worker_token_notes(gw, "katherine") == []
