"""Culling on the real hub: idle servers stop and keep their disks; active ones run on."""

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

pytestmark = pytest.mark.e2e

FAST_CULLING = """
c.CullingPolicy.timeout = 10
c.CullingPolicy.every = 2
c.JupyterHub.last_activity_interval = 2
c.Spawner.environment["JUPYTERHUB_ACTIVITY_INTERVAL"] = "1"
c.Spawner.environment["PANGEOHUB_BUSY_CHECK_SECONDS"] = "1"
"""


def start_quiet_computation(hub, server_url: str, token: str, seconds: int):
    """Start a kernel on the server and run a cell that computes silently for `seconds`."""
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{server_url}api/kernels", headers=headers, json={}, timeout=30)
    assert kernel.status_code == 201, kernel.text
    ws_url = server_url.replace("http://", "ws://") + f"api/kernels/{kernel.json()['id']}/channels"
    ws = websocket.create_connection(ws_url, header=[f"Authorization: token {token}"], timeout=30)
    msg_id = uuid.uuid4().hex
    ws.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                    "date": "",
                },
                "parent_header": {},
                "metadata": {},
                "channel": "shell",
                "content": {
                    "code": f"import time; time.sleep({seconds})",
                    "silent": False,
                    "store_history": False,
                    "user_expressions": {},
                    "allow_stdin": False,
                    "stop_on_error": True,
                },
            }
        )
    )
    for _ in range(100):  # wait for the kernel to report that it is busy with our cell
        msg = json.loads(ws.recv())
        if msg.get("msg_type") == "status" and msg["content"]["execution_state"] == "busy":
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                break
    return ws


def culler_token(hub) -> str:
    """The culler service's own API token, read from its process (we are its parent's user)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pangeohub.culling" not in cmdline:
            continue
        env = dict(item.split(b"=", 1) for item in environ if b"=" in item)
        if env.get(b"JUPYTERHUB_API_URL", b"").startswith(
            f"http://127.0.0.1:{hub.hub_port}".encode()
        ):
            return env[b"JUPYTERHUB_API_TOKEN"].decode()
    raise AssertionError("the idle-culler service is not running")


def culler_passes(hub) -> int:
    """How many passes the idle culler has made: each lists the users once (the hub logs it)."""
    log = hub.log_path.read_text(errors="replace")
    return log.count("GET /hub/api/users?state=[secret] (idle-culler@")


def wait_for_culler_passes(hub, more: int, timeout: float = 60) -> None:
    """Wait (bounded) until the culler has made `more` passes after now."""
    target = culler_passes(hub) + more
    deadline = time.monotonic() + timeout
    while culler_passes(hub) < target:
        assert time.monotonic() < deadline, f"the culler made no {more} passes:\n{hub.log_tail()}"
        time.sleep(0.2)


def keep_using(url: str, token: str, stop: threading.Event) -> None:
    """A person using their server: a request every second, until told to stop."""
    while not stop.wait(1):
        requests.get(url, headers={"Authorization": f"token {token}"}, timeout=10)


def test_idle_server_stops_keeps_its_disk_active_ones_run_on(hub_factory):
    hub = hub_factory(FAST_CULLING)
    grace = hub.login("grace")
    token = hub.api(grace, "post", "/users/grace/tokens", json={}).json()["token"]

    def start(name):
        response = hub.api(grace, "post", f"/users/grace/servers/{name}", json={})
        assert response.status_code in (201, 202), response.text
        hub.wait_for_server(grace, "grace", name)

    # "busy" is used by a person the whole time; "computing" runs a quiet cell (no output)
    # for longer than the timeout; "idle" is left alone.
    stop_using = threading.Event()
    start("busy")
    user = threading.Thread(
        target=keep_using,
        args=(f"{hub.url}/user/grace/busy/api/contents/", token, stop_using),
        daemon=True,
    )
    user.start()
    try:
        start("computing")
        kernel = start_quiet_computation(hub, f"{hub.url}/user/grace/computing/", token, 60)
        start("idle")
        disk = hub.server_home("grace", "idle")
        (disk / "results.nc").write_text("precious")

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "idle" not in hub.api(grace, "get", "/users/grace").json()["servers"]:
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the idle server was not culled:\n{hub.log_tail()}")
        wait_for_culler_passes(hub, 2)  # more checks of the culler, all past the timeout
        servers = hub.api(grace, "get", "/users/grace").json()["servers"]
        assert servers["busy"]["ready"], "a server in use was culled"
        assert servers["computing"]["ready"], "a server whose kernel is computing was culled"
    finally:
        stop_using.set()
        user.join(10)
    kernel.close()

    # The culled named server is stopped, not removed; its disk is intact; it starts again.
    listed = hub.api(grace, "get", "/users/grace?include_stopped_servers=1").json()["servers"]
    assert listed["idle"]["stopped"] is True
    assert hub.read_server_file("grace", "idle", "results.nc") == "precious"
    assert hub.api(grace, "post", "/users/grace/servers/idle", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "idle")
    files = requests.get(
        f"{hub.url}/user/grace/idle/api/contents/",
        headers={"Authorization": f"token {token}"},
        timeout=10,
    ).json()
    assert "results.nc" in {item["name"] for item in files["content"]}
    assert "Culling server grace/idle" in hub.log_tail(2000)

    # The culler's role lets it see and stop servers, and nothing else. (JupyterHub's
    # delete:servers scope also covers removal; the culler never asks for it, and a culler
    # configured to is refused at start-up: see the test below.)
    culler = {"Authorization": f"token {culler_token(hub)}"}
    api = f"{hub.url}/hub/api"
    assert requests.get(f"{api}/users", headers=culler, timeout=10).status_code == 200
    refused = [
        requests.post(f"{api}/users/grace/servers/new", headers=culler, json={}, timeout=10),
        requests.get(f"{api}/users/grace/tokens", headers=culler, timeout=10),
        requests.delete(f"{api}/users/grace", headers=culler, timeout=10),
        requests.post(f"{api}/users/grace/tokens", headers=culler, json={}, timeout=10),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    # Nothing the culler was refused happened (the user and her servers are all still
    # listed; "busy" may since have been culled for real, now that nobody uses it).
    listed = hub.api(grace, "get", "/users/grace?include_stopped_servers=1")
    assert listed.status_code == 200
    assert {"busy", "computing", "idle"} <= set(listed.json()["servers"])
    for name in ("idle", "busy", "computing"):
        hub.api(grace, "delete", f"/users/grace/servers/{name}")


def test_destructive_culler_refused_at_start_up(hub_factory):
    from tests.hubprocess import HubError

    config = """
import sys
c.JupyterHub.services.append({"name": "old-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", "--remove-named-servers=True"]})
"""
    with pytest.raises(HubError) as info:
        hub_factory(config)
    assert "pangeohub configuration error" in str(info.value)
    assert "--remove-named-servers, which removes named servers" in str(info.value)
