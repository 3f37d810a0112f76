"""Issue 13, case 7, without a hub: how the dashboard guard is wired on one machine and on
Kubernetes (the deploy files agree with each other and with the code), and which paths
it treats as dashboards."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from traitlets.config import Config

import pangeohub
from pangeohub.gateway.dashboard import DashboardGuard, Verdict, cluster_of, is_plain
from pangeohub.gateway.dashboard_service import AUTH_ROUTE, log_level
from pangeohub.gateway.hub import GatewayService

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PREFIX = "/services/dask-gateway"


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def services(c) -> dict:
    return {s["name"]: s for s in c.JupyterHub.services}


@pytest.mark.parametrize(
    "path, cluster",
    [
        (f"{PREFIX}/clusters/abc123/status", "abc123"),
        (f"{PREFIX}/clusters/ns.abc123/individual-plots.json", "ns.abc123"),
        (f"{PREFIX}/clusters/abc123", "abc123"),
        (f"{PREFIX}/clusters/abc123/status/ws", "abc123"),
        (f"{PREFIX}/clusters/", None),
        (f"{PREFIX}/clustersabc/status", None),
        (f"{PREFIX}/api/v1/clusters/abc123", None),
        ("/services/other/clusters/abc123/status", None),
        (f"/hub{PREFIX}/clusters/abc123/status", None),
    ],
)
def test_what_counts_as_a_dashboard(path, cluster):
    assert cluster_of(path, PREFIX) == cluster


@pytest.mark.parametrize(
    "path, plain",
    [
        (f"{PREFIX}/clusters/abc/status", True),
        (f"{PREFIX}/clusters/abc/", True),
        (f"{PREFIX}/clusters/abc/static/js/bokeh.min.js", True),
        (f"{PREFIX}/clusters/mine/../theirs/status", False),
        (f"{PREFIX}/clusters/mine/%2e%2e/theirs/status", False),
        (f"{PREFIX}/clusters/mine%2F..%2Ftheirs/status", False),
        (f"{PREFIX}/clusters/./abc/status", False),
        (f"{PREFIX}/clusters//abc/status", False),
        (f"{PREFIX}/clusters/mine\\..\\theirs/status", False),
    ],
)
def test_only_plain_paths_are_decided(path, plain):
    """A path another proxy could read differently is refused before any decision."""
    assert is_plain(path) is plain


def test_one_machine_the_hub_routes_the_gateway_through_the_guard(state_dir):
    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    pangeohub.configure(c)
    guard = services(c)["dask-dashboards"]
    gateway = services(c)["dask-gateway"]
    guard_port = DashboardGuard(config=c).port  # chosen by the hub, not written into c
    assert gateway["url"] == f"http://127.0.0.1:{guard_port}"
    assert gateway["oauth_no_confirm"] is True  # the guard signs people in as the gateway
    assert "url" not in guard, "the guard has no route of its own"
    # servers talk to the gateway through the guard too, never to its unguarded proxy
    # (issue 28, finding 9); the guard and the hub reach the proxy itself
    gateway_service = GatewayService(config=c)
    assert gateway_service.address == f"http://127.0.0.1:{guard_port}{PREFIX}"
    proxy = f"http://127.0.0.1:{gateway_service.port}{PREFIX}"
    assert gateway_service.internal_address == proxy
    settings = json.loads((state_dir / "services" / "dask-dashboards.json").read_text())
    assert settings["DashboardGuard"]["gateway_api"] == proxy


def test_switched_off_the_hub_routes_to_the_gateway_itself():
    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    c.DashboardGuard.enabled = False
    pangeohub.configure(c)
    assert "dask-dashboards" not in services(c)
    gateway_port = GatewayService(config=c).port
    assert services(c)["dask-gateway"]["url"] == f"http://127.0.0.1:{gateway_port}"


def test_kubernetes_deploy_files_point_traefik_at_the_guard():
    values = yaml.safe_load((DEPLOY / "values.yaml").read_text())
    gateway_values = yaml.safe_load((DEPLOY / "dask-gateway-values.yaml").read_text())
    (middleware,) = yaml.safe_load_all((DEPLOY / "dask-dashboards-middleware.yaml").read_text())
    rbac = list(yaml.safe_load_all((DEPLOY / "dask-gateway-rbac.yaml").read_text()))
    # the chart's release namespace: where traefik's service account is
    name = gateway_values["rbac"]["traefik"]["serviceAccountName"]
    (account,) = [
        r for r in rbac if r["kind"] == "ServiceAccount" and r["metadata"]["name"] == name
    ]
    namespace = account["metadata"]["namespace"]

    settings = values["hub"]["config"]["DashboardGuard"]
    guard = DashboardGuard(config=Config({"DashboardGuard": settings}))
    assert guard.ip == "0.0.0.0", "traefik calls from another pod"
    assert guard.prefix == gateway_values["gateway"]["prefix"]

    assert middleware["apiVersion"] == "traefik.io/v1alpha1"
    assert middleware["kind"] == "Middleware"
    auth = middleware["spec"]["forwardAuth"]
    address = urlsplit(auth["address"])
    # the hub's Service, in the hub's namespace (the release is in another)
    hub_namespace = urlsplit(values["hub"]["config"]["GatewayService"]["service_url"])
    assert namespace == hub_namespace.hostname.rsplit(".", 1)[1]
    assert (address.hostname, address.port) == ("hub.pangeo", guard.port)
    assert address.path == guard.prefix + AUTH_ROUTE
    assert {"Cookie", "Authorization"} <= set(auth["authResponseHeaders"])

    # on the web entrypoint, so every cluster's route (the controller's) goes through it
    reference = f"{namespace}-{middleware['metadata']['name']}@kubernetescrd"
    assert (
        f"--entrypoints.web.http.middlewares={reference}"
        in (gateway_values["traefik"]["additionalArguments"])
    )
    # the hub's Service and network policy let traefik (and only traefik) reach the port
    (port,) = [p for p in values["hub"]["service"]["extraPorts"] if p["port"] == guard.port]
    assert port["targetPort"] == guard.port
    (rule,) = [
        r for r in values["hub"]["networkPolicy"]["ingress"] if r["ports"][0]["port"] == guard.port
    ]
    assert rule["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {
                "matchLabels": {
                    "app.kubernetes.io/name": "dask-gateway",
                    "app.kubernetes.io/component": "traefik",
                }
            },
        }
    ]


class CountingGuard(DashboardGuard):
    """The decision with the gateway's answers scripted (the e2e tests ask the real one)."""

    answers: list = []

    async def _ask_gateway(self, name, token, cluster):
        self.asked = getattr(self, "asked", 0) + 1
        return self.answers.pop(0)


def decide(guard, user, token="t", cluster="c1"):
    return asyncio.run(guard.decide(user, token, cluster))


GRACE = {"kind": "user", "name": "grace", "admin": False}


def test_a_decision_is_kept_briefly_and_a_gateway_failure_is_not():
    guard = CountingGuard(cache_seconds=60)
    guard.answers = [Verdict(502, "down"), Verdict(200)]
    assert decide(guard, GRACE).status == 502
    assert decide(guard, GRACE).allowed  # asked again: a failure is not kept
    assert decide(guard, GRACE).allowed and guard.asked == 2  # kept
    guard.answers = [Verdict(403, "not yours")]
    assert decide(guard, GRACE, token="another").status == 403  # another token asks
    assert guard.asked == 3
    guard.cache_seconds = 0
    guard.answers = [Verdict(403, "not yours")]
    assert decide(guard, GRACE).status == 403  # expired: asked again


def test_admins_services_and_nobody():
    guard = CountingGuard(admins_see_all=True)
    guard.answers = []
    assert decide(guard, {**GRACE, "admin": True}).allowed  # no question to the gateway
    assert decide(guard, {"kind": "service", "name": "x"}).status == 403
    assert decide(guard, None).status == 401
    assert decide(guard, GRACE, token=None).status == 401
    assert not hasattr(guard, "asked")
    guard.admins_see_all = False
    guard.answers = [Verdict(403, "not yours")]
    assert decide(guard, {**GRACE, "admin": True}).status == 403


def test_only_what_went_wrong_is_logged_as_a_warning():
    """The dask-gateway client's first try at the API, without its token, is answered 401
    and tried again with it: routine, not a warning on every cluster action."""
    assert log_level(200, f"{PREFIX}/api/v1/clusters/") == logging.INFO
    assert log_level(401, f"{PREFIX}/api/v1/clusters/abc") == logging.INFO
    assert log_level(401, f"{PREFIX}/clusters/abc/status") == logging.WARNING
    assert log_level(403, f"{PREFIX}/api/v1/clusters/abc") == logging.WARNING
    assert log_level(404, f"{PREFIX}/clusters/abc/status") == logging.WARNING
