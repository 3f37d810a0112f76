"""Issue 13, case 7: a Dask dashboard is for its cluster's owner and the hub's admins.

The real hub starts the real dask-gateway-server (local backend) and pangeohub's
dashboard guard in front of its proxy; grace starts a real cluster, whose scheduler
serves the real bokeh dashboard. Attackers (nobody signed in, a forged cookie, another
user by browser and by token) try the status page, a sub-path and the bokeh websocket;
grace's signed-in browser session follows the link straight through, and so does the
admin. The traefik ``forwardAuth`` endpoint gives the same answers for the same people.
"""

from __future__ import annotations

import importlib.util
import uuid

import pytest
import requests
import websocket

from tests.gateway.test_gateway_hub import GATEWAY_CONFIG, GatewayHub, close, kill_marked
from tests.hubprocess import HubProcess, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        importlib.util.find_spec("bokeh") is None,
        reason="bokeh is not installed, so schedulers serve no dashboard to guard",
    ),
]
MARK = "PANGEOHUB_TEST_DASHBOARDS"
PREFIX = "/services/dask-gateway"
AUTH = PREFIX + "/_pangeohub/dashboard-auth"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(scope="module")
def dash(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dashboards")
    marker = uuid.uuid4().hex
    scheduler_port = free_port()
    hub = HubProcess(
        workdir / "hub",
        extra_config=GATEWAY_CONFIG.format(mark=MARK, marker=marker, metrics_token="m" * 20)
        + f"c.GatewayService.scheduler_port = {scheduler_port}\n",
    )
    gateway = cluster = None
    try:
        hub.start()
        gw = GatewayHub(hub, scheduler_port)
        gw.wait_ready()
        gateway = gw.gateway("grace")
        cluster = gateway.new_cluster()
        gw.cluster = cluster
        gw.dashboard = f"{hub.url}{PREFIX}/clusters/{cluster.name}/status"
        yield gw
    finally:
        if cluster is not None:
            cluster.shutdown()
            cluster.gateway.__dict__.pop("_loop_runner", None)
        if gateway is not None:
            close(gateway)
        hub.stop()
        kill_marked(f"{MARK}={marker}".encode())
        kill_marked(f"PANGEOHUB_STATE_DIR={hub.state_dir}".encode())


def signed_in(gw: GatewayHub, user: str) -> requests.Session:
    """``user``'s browser: signed in to the hub, then through the link to the dashboard
    (the hub's OAuth with the gateway, with no confirmation page)."""
    session = gw.hub.login(user)
    session.get(gw.dashboard, headers=HTML, timeout=30)
    return session


def websocket_status(gw: GatewayHub, headers: dict | None = None, cookies=None) -> int:
    """The HTTP status of the bokeh websocket's handshake (101: connected)."""
    url = gw.dashboard.replace("http://", "ws://") + "/ws"
    cookie = "; ".join(f"{c.name}={c.value}" for c in cookies or [])
    try:
        ws = websocket.create_connection(
            url,
            header=[f"{k}: {v}" for k, v in (headers or {}).items()],
            cookie=cookie or None,
            origin=gw.hub.url,
            timeout=15,
        )
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    try:
        ws.recv()  # bokeh's ACK: the scheduler's dashboard answers through the guard
    finally:
        ws.close()
    return 101


def test_the_owners_signed_in_browser_follows_the_link(dash):
    session = dash.hub.login("grace")
    page = session.get(dash.dashboard, headers=HTML, timeout=30)
    assert page.status_code == 200 and "Dask" in page.text
    hops = [r.url for r in page.history]
    assert any("/hub/api/oauth2/authorize" in hop for hop in hops), hops
    assert session.get(f"{dash.dashboard}/../individual-plots.json", timeout=30).ok
    assert websocket_status(dash, cookies=session.cookies) == 101


def test_the_owners_token_and_an_admin_get_the_dashboard(dash):
    grace = {"Authorization": f"token {dash.token('grace', note='dashboard script')}"}
    assert requests.get(dash.dashboard, headers=grace, timeout=30).status_code == 200
    ada = signed_in(dash, "ada")
    assert ada.get(dash.dashboard, headers=HTML, timeout=30).status_code == 200
    assert websocket_status(dash, cookies=ada.cookies) == 101


def assert_refused(response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert "Traceback" not in response.text


def test_nobody_signed_in_is_sent_to_the_hubs_sign_in(dash):
    page = requests.get(dash.dashboard, headers=HTML, allow_redirects=False, timeout=30)
    assert page.status_code == 302
    assert "/hub/api/oauth2/authorize" in page.headers["Location"]
    # followed: the hub's sign-in page, not the dashboard
    followed = requests.get(dash.dashboard, headers=HTML, timeout=30)
    assert "/hub/login" in followed.url and "Bokeh" not in followed.text
    sub_path = f"{dash.hub.url}{PREFIX}/clusters/{dash.cluster.name}/individual-plots.json"
    assert_refused(requests.get(sub_path, timeout=30), 401, "Sign in to the hub")
    assert websocket_status(dash) == 401


def test_a_forged_cookie_is_no_sign_in(dash):
    forged = requests.Session()
    forged.cookies.set("service-dask-gateway", "2|1:0|10:1700000000|forged|x", path=PREFIX)
    assert_refused(forged.get(dash.dashboard, timeout=30), 401, "Sign in")
    assert websocket_status(dash, cookies=forged.cookies) == 401


def test_another_user_is_refused_by_browser_and_by_token(dash):
    katherine = signed_in(dash, "katherine")
    page = katherine.get(dash.dashboard, headers=HTML, timeout=30)
    assert_refused(page, 403, "belongs to another user's cluster")
    sub_path = dash.dashboard.replace("/status", "/system")
    assert_refused(katherine.get(sub_path, timeout=30), 403, "another user's")
    assert websocket_status(dash, cookies=katherine.cookies) == 403
    token = {"Authorization": f"token {dash.token('katherine', note='snooping')}"}
    assert_refused(requests.get(dash.dashboard, headers=token, timeout=30), 403, "another")
    assert websocket_status(dash, headers=token) == 403


def forward_auth(dash, browser: requests.Session, uri: str, **headers):
    """What traefik's forwardAuth middleware asks the endpoint for a browser's request to
    ``uri``: the browser's headers and cookies, and X-Forwarded-*. A 2xx lets the request
    through; any other answer goes back to the browser as it is."""
    headers = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": uri, **HTML, **headers}
    return browser.get(dash.hub.url + AUTH, headers=headers, allow_redirects=False, timeout=30)


def test_the_forward_auth_endpoint_signs_in_and_decides(dash):
    """The Kubernetes wiring's protocol, end to end with the real hub: grace, signed in
    to the hub only, follows her link through forwardAuth answers alone."""
    status = f"{PREFIX}/clusters/{dash.cluster.name}/status"
    grace = dash.hub.login("grace")
    answer = forward_auth(dash, grace, status)
    assert answer.status_code == 302 and "oauth2/authorize" in answer.headers["Location"]
    location = answer.headers["Location"]
    for _ in range(5):  # the hub's authorize -> the callback under the gateway's prefix
        if location.startswith(f"{PREFIX}/oauth_callback"):
            break
        hop = grace.get(
            dash.hub.url + location if location.startswith("/") else location,
            allow_redirects=False,
            timeout=30,
        )
        assert hop.status_code == 302, hop.text
        location = hop.headers["Location"]
    else:
        raise AssertionError(f"the hub did not send grace back to the callback: {location}")
    back = forward_auth(dash, grace, location)  # traefik sends the callback here too
    assert back.status_code == 302 and back.headers["Location"] == status
    allowed = forward_auth(dash, grace, status)
    # 200, and no Cookie/Authorization for traefik to forward to the scheduler
    assert allowed.status_code == 200
    assert "Cookie" not in allowed.headers and "Authorization" not in allowed.headers
    # the gateway's API passes with its own credentials unchanged
    api = forward_auth(dash, grace, f"{PREFIX}/api/v1/clusters/", Authorization="jupyterhub x")
    assert api.status_code == 200 and api.headers["Authorization"] == "jupyterhub x"
    assert_refused(forward_auth(dash, signed_in(dash, "katherine"), status), 403, "another")
    assert forward_auth(dash, requests.Session(), status).status_code == 302
    assert_refused(forward_auth(dash, requests.Session(), status, Accept="*/*"), 401, "Sign in")
    assert forward_auth(dash, grace, "/hub/admin").status_code == 403
