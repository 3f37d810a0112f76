"""Issue 13, case 7: a Dask dashboard is for its cluster's owner and the hub's admins.

The real hub starts the real dask-gateway-server (local backend) and pangeohub's
dashboard guard in front of its proxy; grace starts a real cluster, whose scheduler
serves the real bokeh dashboard. Attackers (nobody signed in, a forged cookie, another
user by browser and by token) try the status page, a sub-path and the bokeh websocket;
grace's signed-in browser session follows the link straight through, and so does the
admin. The traefik ``forwardAuth`` endpoint gives the same answers for the same people.
"""

from __future__ import annotations

import html
import http.client
import importlib.util
import json
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import websocket
import yaml

from pangeohub.dask_gate import HEADER
from pangeohub.gateway.dashboard import KEY_SECRET, cluster_key
from pangeohub.state import StateDirectory
from tests.chromium import headless_chromium, sign_in
from tests.dask_clients import close
from tests.gateway.keyed_route import KeyedRoute
from tests.gateway.test_gateway_hub import GATEWAY_CONFIG, GatewayHub, kill_marked
from tests.hubprocess import HubProcess, free_port, wait_for_http
from tests.k8s_fake import FakeKube
from tests.k8s_fake.crds import DASK_GATEWAY_CRDS
from tests.k8s_fake.traefik import TraefikStandIn

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
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


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


def websocket_status(gw: GatewayHub, headers: dict | None = None, cookies=None, base=None) -> int:
    """The HTTP status of the bokeh websocket's handshake; 101 only when bokeh itself
    answered through it (its ACK, for the session token of the page it served)."""
    page = (base or gw.hub.url) + gw.dashboard[len(gw.hub.url) :]
    protocols = None
    if cookies is not None or headers:
        html = requests.get(page, headers=headers, cookies=cookies, timeout=30).text
        found = re.search(r'\\?"token\\?":\\?"([A-Za-z0-9_.-]+)', html)
        protocols = ["bokeh", found.group(1) if found else "no-token-in-page"]
    cookie = "; ".join(f"{c.name}={c.value}" for c in cookies or [])
    try:
        ws = websocket.create_connection(
            page.replace("http://", "ws://") + "/ws",
            header=[f"{k}: {v}" for k, v in (headers or {}).items()],
            cookie=cookie or None,
            origin=base or gw.hub.url,
            subprotocols=protocols,
            timeout=15,
        )
    except websocket.WebSocketBadStatusException as refused:
        return refused.status_code
    try:
        answer = ws.recv()
    finally:
        ws.close()
    assert '"msgtype": "ACK"' in answer, f"bokeh did not answer: {answer!r}"
    return 101


def test_the_owners_signed_in_browser_follows_the_link(dash):
    session = dash.hub.login("grace")
    page = session.get(dash.dashboard, headers=HTML, timeout=30)
    assert page.status_code == 200 and "Dask" in page.text
    hops = [r.url for r in page.history]
    assert any("/hub/api/oauth2/authorize" in hop for hop in hops), hops
    assert session.get(f"{dash.dashboard}/../individual-plots.json", timeout=30).ok
    # a page's own fetch, before any visit (the JupyterLab Dask extension's check from the
    # browser): through the hub's sign-in too, to the plots' list
    fetcher = dash.hub.login("grace")
    plots = dash.dashboard.replace("/status", "/individual-plots.json")
    listing = fetcher.get(plots, headers={"Sec-Fetch-Mode": "cors", "Accept": "*/*"})
    assert listing.status_code == 200 and listing.json(), listing.text[:200]
    assert websocket_status(dash, cookies=session.cookies) == 101


def test_the_owners_token_and_an_admin_get_the_dashboard(dash):
    grace = {"Authorization": f"token {dash.token('grace', note='dashboard script')}"}
    assert requests.get(dash.dashboard, headers=grace, timeout=30).status_code == 200
    gone = dash.dashboard.replace(dash.cluster.name, "0" * 32)  # a link to no cluster
    assert_refused(requests.get(gone, headers=grace, timeout=30), 404, "There is no Dask cluster")
    ada = signed_in(dash, "ada")
    assert ada.get(dash.dashboard, headers=HTML, timeout=30).status_code == 200
    assert websocket_status(dash, cookies=ada.cookies) == 101


def assert_refused(response, status: int, words: str) -> None:
    """Refused with ``status`` and a message: a page for a browser, else JSON."""
    assert response.status_code == status, response.text
    if response.headers["Content-Type"].startswith("text/html"):
        assert words in html.unescape(response.text)
    else:
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


def test_a_path_that_climbs_out_of_a_cluster_is_refused(dash):
    """katherine's own cluster name, then ``..`` into grace's: checked as neither."""
    port = int(urlsplit(dash.hub.url).port)
    token = dash.token("katherine", note="climbing")
    for climb in ("mine/../", "mine/%2e%2e/", "mine%2F..%2F"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            path = f"{PREFIX}/clusters/{climb}{dash.cluster.name}/status"
            connection.request("GET", path, headers={"Authorization": f"token {token}"})
            answer = connection.getresponse()
            assert answer.status == 400, (climb, answer.status)
            assert b"use the plain link" in answer.read()
        finally:
            connection.close()


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


def test_the_schedulers_own_ports_answer_only_the_guard(dash):
    """Without the guard, a scheduler's own dashboard port (any account can find it) and
    the gateway's proxy (for anyone who knows the name) answer nothing but where to go;
    with the cluster's key, which only the guard adds, the dashboard is served."""
    client = dash.cluster.get_client()
    try:
        port = client.scheduler_info()["services"]["dashboard"]
    finally:
        client.close()
    settings = json.loads((dash.hub.state_dir / "services" / "dask-dashboards.json").read_text())
    proxy = settings["DashboardGuard"]["upstream"] + PREFIX + f"/clusters/{dash.cluster.name}"
    secret = StateDirectory(dash.hub.state_dir).secret(KEY_SECRET)
    for base in (f"http://127.0.0.1:{port}", proxy):
        for path in ("/status", "/individual-plots.json", "/metrics", "/health"):
            answer = requests.get(base + path, timeout=30)
            assert answer.status_code == 403 and "through the hub" in answer.text, (base, path)
            wrong = {HEADER: cluster_key(secret, "another-cluster")}
            assert requests.get(base + path, headers=wrong, timeout=30).status_code == 403
        keyed = {HEADER: cluster_key(secret, dash.cluster.name)}
        assert "Bokeh" in requests.get(base + "/status", headers=keyed, timeout=30).text


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


@pytest.fixture(scope="module")
def traefik(dash):
    """The Kubernetes wiring on the fake cluster: the deploy files' forwardAuth middleware
    on the web entrypoint of the traefik stand-in (the chart's traefik arguments), in
    front of a route to the gateway (here the one-machine gateway's proxy, as the chart's
    routes lead to the gateway and the schedulers; :mod:`tests.gateway.keyed_route` stands
    for the network path to the schedulers, which ask no key on Kubernetes)."""
    values = yaml.safe_load((DEPLOY / "dask-gateway-values.yaml").read_text())
    (middleware,) = yaml.safe_load_all((DEPLOY / "dask-dashboards-middleware.yaml").read_text())
    settings = json.loads((dash.hub.state_dir / "services" / "dask-dashboards.json").read_text())
    guard_port = settings["DashboardGuard"]["port"]
    gateway_port = int(urlsplit(settings["DashboardGuard"]["upstream"]).port)
    auth = middleware["spec"]["forwardAuth"]
    # the hub's Service name, resolved to where this test's hub runs
    address = "http://hub.pangeo:8099"
    assert auth["address"].startswith(address + "/"), auth["address"]
    auth["address"] = auth["address"].replace(address, f"http://127.0.0.1:{guard_port}")
    secret = StateDirectory(dash.hub.state_dir).secret(KEY_SECRET)
    upstream, route_port = f"http://127.0.0.1:{gateway_port}", free_port()
    # the release's namespace, the only one traefik watches (the values' arguments)
    with (
        KeyedRoute(upstream, secret, dash.cluster.name, route_port),
        FakeKube(namespace="pangeo-dask") as kube,
    ):
        for definition in DASK_GATEWAY_CRDS:
            kube.define(definition)
        kube.create("middlewares", middleware)
        kube.create("services", {"metadata": {"name": "gw"}, "spec": {"ports": [PORT]}})
        subsets = [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{**PORT, "port": route_port}]}]
        kube.create("endpoints", {"metadata": {"name": "gw"}, "subsets": subsets})
        route = {"match": f"PathPrefix(`{PREFIX}/`)", "kind": "Rule"}
        route["services"] = [{"name": "gw", "port": PORT["port"]}]
        spec = {"entryPoints": ["web"], "routes": [route]}
        kube.create("ingressroutes", {"metadata": {"name": "gw"}, "spec": spec})
        arguments = values["traefik"]["additionalArguments"]
        with TraefikStandIn(kube, free_port(), free_port(), arguments=arguments) as proxy:
            proxy.url = f"http://127.0.0.1:{proxy.web_port}"
            ready = f"{proxy.url}{PREFIX}/api/health"
            assert wait_for_http(ready, 30), proxy.errors
            yield proxy
            assert proxy.errors == []


PORT = {"name": "http", "port": 8000}


def test_on_kubernetes_traefik_asks_the_guard(dash, traefik):
    """The owner's browser signs in and sees the dashboard and its websocket through
    traefik's forwardAuth; another user and nobody signed in are refused there."""
    status = f"{traefik.url}{PREFIX}/clusters/{dash.cluster.name}/status"
    grace = dash.hub.login("grace")  # cookies of 127.0.0.1: the hub's and traefik's origin
    location = grace.get(status, headers=HTML, allow_redirects=False, timeout=30)
    for _ in range(6):  # sign-in at the hub, the callback through traefik, the dashboard
        if location.status_code != 302:
            break
        target = location.headers["Location"]
        base = traefik.url if target.startswith(PREFIX) else dash.hub.url
        url = base + target if target.startswith("/") else target
        location = grace.get(url, headers=HTML, allow_redirects=False, timeout=30)
    assert location.status_code == 200 and "Dask" in location.text, location.text[:300]
    assert websocket_status(dash, cookies=grace.cookies, base=traefik.url) == 101

    katherine = signed_in(dash, "katherine")
    assert_refused(katherine.get(status, timeout=30), 403, "another user's")
    assert_refused(requests.get(status, timeout=30), 401, "Sign in")
    assert websocket_status(dash, base=traefik.url) == 401
    assert websocket_status(dash, cookies=katherine.cookies, base=traefik.url) == 403
    # the gateway's API through the same entrypoint, its own token check untouched
    token = dash.token("grace", note="through traefik")
    listed = requests.get(
        f"{traefik.url}{PREFIX}/api/v1/clusters/",
        headers={"Authorization": f"jupyterhub {token}"},
        timeout=30,
    )
    assert listed.status_code == 200 and dash.cluster.name in listed.text


def signed_in_page(browser, dash, user: str):
    """A new browser (its own cookies) signed in to the hub through its login form."""
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{dash.hub.url}/hub/login")
    sign_in(page, dash.hub, user)
    page.wait_for_url("**/hub/**")
    return page


@pytest.mark.browser
def test_in_a_browser_the_link_opens_for_its_owner_only(dash, output_dir):
    """Headless Chromium: grace signs in to the hub and opens her link; bokeh's page and
    websocket run (frames arrive, plots drawn, nothing fails). katherine reads the refusal."""
    with headless_chromium() as browser:
        page = signed_in_page(browser, dash, "grace")
        failed = []
        page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
        page.on("console", lambda m: failed.append(m.text) if m.type == "error" else None)
        with page.expect_websocket(lambda ws: ws.url.endswith("/status/ws")) as opened:
            page.goto(dash.dashboard)
        opened.value.wait_for_event("framereceived", timeout=30_000)
        page.wait_for_selector("canvas", state="attached")  # bokeh drew its plots
        assert failed == []
        assert page.url == dash.dashboard  # no extra step: straight to the dashboard
        page.screenshot(path=output_dir / "dashboard-1-owner.png")

        page = signed_in_page(browser, dash, "katherine")
        page.goto(dash.dashboard)
        assert "belongs to another user's cluster" in page.content()
        assert page.get_attribute("a", "href") == "/hub/home"  # a way back
        page.screenshot(path=output_dir / "dashboard-2-other-user.png")
