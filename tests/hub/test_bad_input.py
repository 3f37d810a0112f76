"""Bad input, systematically: malformed requests to every surface pangeohub adds, on the
real hub (proxy, scratch and Dask Gateway services), each answered with a 4xx and a
message a person can read, never a 5xx, a traceback or a secret.

One hub for the module; every case is one request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest
import requests

from tests.hubprocess import HubProcess

pytestmark = pytest.mark.e2e

# grace (climate) may use only "small" here: "large" is for admins.
CONFIG = """
c.PangeoPolicy.named_server_limit = 2
c.PangeoPolicy.profiles = [
    {"display_name": "Small", "slug": "small", "cpu_limit": 1, "mem_limit": "1G", "default": True},
    {"display_name": "Large", "slug": "large", "cpu_limit": 2,
     "groups": ["pangeo-data:hub-admins"]},
]
"""


@dataclass
class Case:
    """One malformed request: ``who`` is "grace" (token), "cookie" (signed-in browser
    session, with XSRF) or "anonymous"."""

    id: str
    method: str
    path: str
    who: str = "grace"
    json: object = None
    data: object = None
    headers: dict = field(default_factory=dict)


def api(id, method, path, **kw):
    return Case(id, method, f"/hub/api{path}", **kw)


RAW = {"Content-Type": "application/json"}
LONG = "x" * 5000
U = "/users/grace"
GW = "/services/dask-gateway/api/v1/clusters/"


def cluster(id, options, **kw):
    return Case(id, "post", GW, json={"cluster_options": options}, **kw)


def raw_cluster(id, text):
    return Case(id, "post", GW, data=text, headers=RAW)


CASES = [
    # --- spawn API: bodies ---------------------------------------------------
    api("spawn-body-list", "post", f"{U}/servers/one", json=[1, 2]),
    api("spawn-body-string", "post", f"{U}/servers/one", json="large"),
    api("spawn-body-number", "post", f"{U}/servers/one", json=7),
    api("spawn-body-not-json", "post", f"{U}/servers/one", data="{nope", headers=RAW),
    api("spawn-options-list", "post", f"{U}/servers/one", json={"user_options": [1]}),
    api("spawn-options-string", "post", f"{U}/servers/one", json={"user_options": "x"}),
    api("spawn-profile-number", "post", f"{U}/servers/one", json={"profile": 3}),
    api("spawn-profile-list", "post", f"{U}/servers/one", json={"profile": ["small"]}),
    api("spawn-profile-dict", "post", f"{U}/servers/one", json={"profile": {"a": 1}}),
    api("spawn-profile-bool", "post", f"{U}/servers/one", json={"profile": True}),
    api("spawn-profile-unknown", "post", f"{U}/servers/one", json={"profile": "nope"}),
    api("spawn-profile-huge", "post", f"{U}/servers/one", json={"profile": LONG}),
    api("spawn-profile-nul", "post", f"{U}/servers/one", json={"profile": "sm\x00all"}),
    api("spawn-profile-html", "post", f"{U}/servers/one", json={"profile": "<script>x</script>"}),
    api("spawn-default-profile-bad", "post", f"{U}/server", json={"profile": "nope"}),
    api("spawn-display-number", "post", f"{U}/servers/one", json={"display_name": 5}),
    api("spawn-display-long", "post", f"{U}/servers/one", json={"display_name": LONG}),
    api("spawn-display-newline", "post", f"{U}/servers/one", json={"display_name": "a\nb"}),
    api("spawn-display-spaces", "post", f"{U}/servers/one", json={"display_name": "  a"}),
    api("spawn-display-list", "post", f"{U}/servers/one", json={"display_name": ["a"]}),
    api("put-options-string", "put", f"{U}/servers/one", json={"user_options": "x"}),
    api(
        "put-profile-forbidden",
        "put",
        f"{U}/servers/one",
        json={"user_options": {"profile": "large"}},
    ),
    api("put-default-server", "put", f"{U}/servers/", json={}),
    # --- server names in the URL ---------------------------------------------
    *[
        api(f"name-{i}", "post", f"{U}/servers/{name}", json={})
        for i, name in enumerate(
            [
                "Upper",
                "under_score",
                "a" * 21,
                "a" * 300,
                "-lead",
                "trail-",
                "dou--ble",
                "sp%20ace",
                "%2e%2e",
                "dot.name",
                "caf%C3%A9",
                "%F0%9F%9A%80",
                "1digit-first",
                "semi%3Bcolon",
                "new%0Aline",
                "tab%09",
                "quote%22",
                "back%5Cslash",
            ]
        )
    ],
    # --- renames and display names (PATCH) -----------------------------------
    api("patch-empty", "patch", f"{U}/servers/first", json={}),
    api("patch-unknown-key", "patch", f"{U}/servers/first", json={"colour": "red"}),
    api("patch-name-number", "patch", f"{U}/servers/first", json={"name": 5}),
    api("patch-name-long", "patch", f"{U}/servers/first", json={"name": "b" * 25}),
    api("patch-name-invalid", "patch", f"{U}/servers/first", json={"name": "Bad Name"}),
    api("patch-name-empty", "patch", f"{U}/servers/first", json={"name": ""}),
    api("patch-display-long", "patch", f"{U}/servers/first", json={"display_name": LONG}),
    api("patch-display-number", "patch", f"{U}/servers/first", json={"display_name": 3}),
    api("patch-options-list", "patch", f"{U}/servers/first", json={"user_options": [1]}),
    api("patch-missing-server", "patch", f"{U}/servers/ghost", json={"name": "fine"}),
    api("patch-body-list", "patch", f"{U}/servers/first", json=["name"]),
    # --- spawn form and page -------------------------------------------------
    Case(
        "form-profile-forbidden",
        "post",
        "/hub/spawn/grace/formy",
        who="cookie",
        data={"profile": "large"},
    ),
    Case(
        "form-profile-unknown",
        "post",
        "/hub/spawn/grace/formy",
        who="cookie",
        data={"profile": "nope"},
    ),
    Case(
        "form-profile-huge", "post", "/hub/spawn/grace/formy", who="cookie", data={"profile": LONG}
    ),
    Case(
        "form-profile-newline",
        "post",
        "/hub/spawn/grace/formy",
        who="cookie",
        data={"profile": "small\n"},
    ),
    Case(
        "form-bad-name",
        "post",
        "/hub/spawn/grace/Bad_Name",
        who="cookie",
        data={"profile": "small"},
    ),
    Case(
        "form-long-name",
        "post",
        f"/hub/spawn/grace/{'c' * 25}",
        who="cookie",
        data={"profile": "small"},
    ),
    Case(
        "form-no-xsrf",
        "post",
        "/hub/spawn/grace/formy",
        who="cookie-no-xsrf",
        data={"profile": "small"},
    ),
    Case(
        "form-other-user",
        "post",
        "/hub/spawn/katherine/formy",
        who="cookie",
        data={"profile": "small"},
    ),
    Case("page-query-profile", "get", "/hub/spawn/grace/query?profile=large", who="cookie"),
    Case(
        "page-query-display", "get", f"/hub/spawn/grace/query?display_name={'d' * 40}", who="cookie"
    ),
    Case("page-bad-name", "get", "/hub/spawn/grace/Bad_Name", who="cookie"),
    # --- scratch endpoints and query strings ---------------------------------
    Case("scratch-no-token", "get", "/services/scratch/credentials", who="anonymous"),
    Case(
        "scratch-empty-token",
        "get",
        "/services/scratch/credentials",
        who="anonymous",
        headers={"Authorization": "token "},
    ),
    Case(
        "scratch-bearer-garbage",
        "get",
        "/services/scratch/credentials",
        who="anonymous",
        headers={"Authorization": "Bearer ???"},
    ),
    Case(
        "scratch-long-token",
        "get",
        "/services/scratch/credentials",
        who="anonymous",
        headers={"Authorization": f"token {'t' * 4000}"},
    ),
    Case(
        "scratch-unknown-token",
        "get",
        "/services/scratch/credentials",
        who="anonymous",
        headers={"Authorization": "token 0123456789abcdef0123456789abcdef"},
    ),
    Case(
        "scratch-basic-auth",
        "get",
        "/services/scratch/credentials",
        who="anonymous",
        headers={"Authorization": "Basic Z3JhY2U6eA=="},
    ),
    Case("scratch-other-user", "get", "/services/scratch/credentials?user=katherine"),
    Case("scratch-dotdot-user", "get", "/services/scratch/credentials?user=../katherine"),
    Case("scratch-nested-user", "get", "/services/scratch/credentials?user=grace/../katherine"),
    Case("scratch-empty-user", "get", "/services/scratch/credentials?user="),
    Case("scratch-long-user", "get", f"/services/scratch/credentials?user={LONG}"),
    Case("scratch-upper-user", "get", "/services/scratch/credentials?user=GRACE"),
    Case("scratch-unicode-user", "get", "/services/scratch/credentials?user=gr%C3%A2ce"),
    Case("scratch-two-users", "get", "/services/scratch/credentials?user=grace&user=katherine"),
    Case("scratch-post", "post", "/services/scratch/credentials", json={}),
    Case("scratch-gcs-no-body", "post", "/services/scratch/gcs/token", who="anonymous"),
    Case(
        "scratch-gcs-garbage",
        "post",
        "/services/scratch/gcs/token",
        who="anonymous",
        data="grant_type=nope&subject_token=x",
    ),
    Case(
        "scratch-gcs-json",
        "post",
        "/services/scratch/gcs/token",
        who="anonymous",
        data="{}",
        headers=RAW,
    ),
    Case("scratch-unknown-path", "get", "/services/scratch/keys", who="anonymous"),
    # --- Dask Gateway options --------------------------------------------------
    raw_cluster("gw-idle-nan", '{"cluster_options": {"idle_timeout": NaN}}'),
    raw_cluster("gw-idle-inf", '{"cluster_options": {"idle_timeout": Infinity}}'),
    raw_cluster("gw-idle-neg-inf", '{"cluster_options": {"idle_timeout": -Infinity}}'),
    raw_cluster("gw-memory-nan", '{"cluster_options": {"worker_memory": NaN}}'),
    raw_cluster("gw-cores-nan", '{"cluster_options": {"worker_cores": NaN}}'),
    raw_cluster("gw-not-json", '{"cluster_options": '),
    raw_cluster("gw-body-list", "[1, 2]"),
    cluster("gw-idle-zero", {"idle_timeout": 0}),
    cluster("gw-idle-negative", {"idle_timeout": -5}),
    cluster("gw-idle-huge", {"idle_timeout": 1e308}),
    cluster("gw-idle-string", {"idle_timeout": "10"}),
    cluster("gw-idle-bool", {"idle_timeout": True}),
    cluster("gw-cores-float", {"worker_cores": 1.5}),
    cluster("gw-cores-big", {"worker_cores": 10**30}),
    cluster("gw-cores-negative", {"worker_cores": -1}),
    cluster("gw-memory-zero", {"worker_memory": 0}),
    cluster("gw-memory-list", {"worker_memory": [1]}),
    cluster("gw-image-evil", {"image": "evil/miner:1"}),
    cluster("gw-image-number", {"image": 5}),
    cluster("gw-image-huge", {"image": LONG}),
    cluster("gw-env-protected", {"environment": {"PANGEO_SCRATCH": "s3://x"}}),
    cluster("gw-env-path", {"environment": {"PATH": "/tmp"}}),
    cluster("gw-env-token", {"environment": {"JUPYTERHUB_API_TOKEN": "x"}}),
    cluster("gw-env-bad-name", {"environment": {"1BAD": "x"}}),
    cluster("gw-env-equals", {"environment": {"A=B": "x"}}),
    cluster("gw-env-value-number", {"environment": {"FINE": 3}}),
    cluster("gw-env-not-mapping", {"environment": ["A"]}),
    cluster("gw-unknown-option", {"colour": "red"}),
    cluster("gw-options-list", [1]),
    Case("gw-no-token", "get", GW, who="anonymous"),
    Case(
        "gw-bad-token",
        "get",
        GW,
        who="anonymous",
        headers={"Authorization": "jupyterhub 0123456789abcdef"},
    ),
    Case("gw-token-no-space", "get", GW, who="anonymous", headers={"Authorization": "jupyterhub"}),
    Case("gw-unknown-cluster", "get", f"{GW}no-such-cluster"),
    Case("gw-scale-unknown", "post", f"{GW}no-such-cluster/scale", json={"count": 2}),
    # --- headers and tokens on the hub's API ---------------------------------
    api("hub-no-token", "get", U, who="anonymous"),
    api("hub-garbage-token", "get", U, who="anonymous", headers={"Authorization": "token !!"}),
    api(
        "hub-bearer-long",
        "get",
        U,
        who="anonymous",
        headers={"Authorization": f"Bearer {'b' * 4000}"},
    ),
    api("hub-other-user-token", "get", "/users/katherine"),
    api("hub-token-for-other", "post", "/users/katherine/tokens", json={}),
    api("hub-spawn-other", "post", "/users/katherine/servers/x", json={}),
    api("hub-admin-only", "get", "/users?offset=0"),
    # --- usernames with unusual characters -----------------------------------
    *[
        Case(
            f"login-{i}",
            "post",
            "/hub/login",
            who="anonymous-form",
            data={"username": name, "password": "wrong"},
        )
        for i, name in enumerate(
            ["../ada", "a b", "grâce", "ada\x00", "x" * 3000, "ADA", "<b>ada</b>", "", "😀"]
        )
    ],
    *[
        api(f"user-path-{i}", "get", f"/users/{name}")
        for i, name in enumerate(["..%2Fada", "%00", "a%20b", "%F0%9F%98%80", "x" * 500])
    ],
]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = HubProcess(tmp_path_factory.mktemp("badinput"), extra_config=CONFIG)
    hub.start()
    session = hub.login("grace")
    token = hub.api(session, "post", "/users/grace/tokens", json={"note": "bad-input"})
    hub.grace_token = token.json()["token"]
    hub.grace_session = session
    first = hub.api(session, "put", "/users/grace/servers/first", json={})
    assert first.status_code == 201, first.text
    yield hub
    hub.stop()


def secrets_of(hub: HubProcess) -> list[str]:
    """Everything secret the hub keeps: its state files' contents and grace's token."""
    found = [hub.grace_token]
    for path in hub.state_dir.iterdir():
        if path.is_file() and path.suffix not in (".sqlite", ".pid", ".log"):
            text = path.read_text(errors="replace").strip()
            if path.name.endswith(".json"):
                found += [v for v in json.loads(text).values() if isinstance(v, str)]
            elif 16 <= len(text) <= 200:
                found.append(text)
    return found


def send(hub: HubProcess, case: Case) -> requests.Response:
    headers = dict(case.headers)
    if case.who == "grace":
        headers.setdefault("Authorization", f"token {hub.grace_token}")
    session = requests.Session()
    data = case.data
    if case.who.startswith("cookie"):
        session = hub.grace_session
        if case.who == "cookie" and isinstance(data, dict):
            data = {**data, "_xsrf": session.cookies.get("_xsrf", path="/hub/")}
        headers.setdefault("Sec-Fetch-Mode", "navigate")
    elif case.who == "anonymous-form":
        session.get(f"{hub.url}/hub/login", timeout=10)
        data = {**data, "_xsrf": session.cookies.get("_xsrf", path="/hub/")}
    return session.request(
        case.method,
        f"{hub.url}{case.path}",
        json=case.json,
        data=data,
        headers=headers,
        allow_redirects=False,
        timeout=30,
    )


def message_of(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error_description") or body.get("error") or "")
    return ""


def test_there_are_at_least_100_cases():
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_4xx_with_a_message(hub, case):
    response = send(hub, case)
    where = f"{case.method.upper()} {case.path[:80]} -> {response.status_code}"
    if case.id.startswith("login-"):  # a refused sign-in is the login page again, with why
        assert response.status_code in (200, 403), where
        assert "Invalid username or password" in response.text, where
    else:
        assert 400 <= response.status_code < 500, f"{where}: {response.text[:300]}"
        text = message_of(response) or response.reason
        assert text and len(text.strip()) >= 10, f"{where}: no message ({response.text[:200]})"
    body = response.text
    assert "Traceback" not in body and 'File "/' not in body, where
    for secret in secrets_of(hub):
        assert secret not in body, f"{where}: a secret in the answer"


def test_no_bad_input_left_a_server_or_a_traceback_in_the_log(hub):
    servers = hub.api(hub.grace_session, "get", "/users/grace?include_stopped_servers")
    assert set(servers.json()["servers"]) <= {"", "first"}, servers.json()["servers"]
    log = hub.log_path.read_text(errors="replace")
    for secret in secrets_of(hub):
        assert secret not in log
