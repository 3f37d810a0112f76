"""The traefik stand-in (tests/k8s_fake/traefik.py) watches what traefik would: told the
namespaces of ``--providers.kubernetescrd.namespaces``, a route, middleware or Service
elsewhere is as absent, so a layout whose routes traefik would not see fails the
gateway's tests on the fake cluster instead of passing."""

from __future__ import annotations

import pytest

from ..k8s_fake import FakeKube
from ..k8s_fake.crds import DASK_GATEWAY_CRDS
from ..k8s_fake.traefik import TraefikStandIn

WATCHED = "--providers.kubernetescrd.namespaces=served"


def route(kube: FakeKube, namespace: str, prefix: str, middleware_ns: str | None = None) -> None:
    kube.create("namespaces", {"metadata": {"name": namespace}})
    port = {"name": "http", "port": 8000}
    kube.create("services", {"metadata": {"name": "api"}, "spec": {"ports": [port]}}, namespace)
    subsets = [{"addresses": [{"ip": "10.0.0.1"}], "ports": [port]}]
    kube.create("endpoints", {"metadata": {"name": "api"}, "subsets": subsets}, namespace)
    rule = {"match": f"PathPrefix(`{prefix}`)", "kind": "Rule"}
    rule["services"] = [{"name": "api", "port": 8000}]
    if middleware_ns:
        rule["middlewares"] = [{"name": "strip", "namespace": middleware_ns}]
    spec = {"entryPoints": ["web"], "routes": [rule]}
    kube.create("ingressroutes", {"metadata": {"name": "api"}, "spec": spec}, namespace)


@pytest.fixture
def kube():
    with FakeKube(namespace="default") as fake:
        for definition in DASK_GATEWAY_CRDS:
            fake.define(definition)
        yield fake


def test_routes_outside_the_watched_namespaces_are_not_served(kube):
    route(kube, "served", "/a")
    route(kube, "elsewhere", "/b")
    everywhere = TraefikStandIn(kube, 0, 0)
    assert set(kube.call(everywhere.wanted)) == {("PATH", "/a"), ("PATH", "/b")}
    watching = TraefikStandIn(kube, 0, 0, arguments=[WATCHED])
    assert set(kube.call(watching.wanted)) == {("PATH", "/a")}


def test_a_middleware_outside_the_watched_namespaces_is_not_found(kube):
    route(kube, "served", "/a", middleware_ns="elsewhere")
    kube.create("namespaces", {"metadata": {"name": "elsewhere"}})
    strip = {"metadata": {"name": "strip"}, "spec": {"stripPrefix": {"prefixes": ["/a"]}}}
    kube.create("middlewares", strip, "elsewhere")
    assert set(kube.call(TraefikStandIn(kube, 0, 0).wanted)) == {("PATH", "/a")}
    watching = TraefikStandIn(kube, 0, 0, arguments=[WATCHED])
    with pytest.raises(LookupError, match="elsewhere/strip not found"):
        kube.call(watching.wanted)


def test_only_the_provider_arguments_it_honours_are_accepted():
    arguments = [WATCHED, "--providers.kubernetescrd.disableClusterScopeResources=true"]
    TraefikStandIn(None, 0, 0, arguments=arguments)
    with pytest.raises(ValueError, match="not supported"):
        TraefikStandIn(None, 0, 0, arguments=["--providers.kubernetescrd.labelselector=x"])
