"""Least privilege in the cluster: the deploy files' network policies and RBAC, evaluated.

The fake API server enforces neither, so each manifest is validated against the API's
schema and its rules are evaluated (:mod:`tests.kubernetes.netpol`) together with the
Zero to JupyterHub chart's own policies, rendered from the values with the chart's
defaults: what must be reachable is, and what must not be is not.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from pangeohub.gateway.kube_netpol import cluster_network_policies

from .netpol import Access, Network, Pod, chart_policies
from .z2jh_chart import CHART_PINNED, load_values

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.31"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def chart_pod(component: str, ip: str, **labels) -> Pod:
    base = {"app": "jupyterhub", "release": "pangeo", "component": component}
    ports = {"http": 8000 if component == "proxy" else 8081, "api": 8001, "https": 8443}
    return Pod(component, ip, {**base, **labels}, ports={**ports, "notebook-port": 8888})


def dask_pod(name: str, component: str, ip: str, cluster: str | None = None) -> Pod:
    labels = {"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/component": component}
    if cluster:
        labels.update(
            {"gateway.dask.org/instance": "dask-gateway", "gateway.dask.org/cluster": cluster}
        )
    if component == "gateway":  # the dask-gateway chart labels its gateway pods so
        labels["hub.jupyter.org/network-access-hub"] = "true"
    return Pod(name, ip, labels)


VALUES = load_values(DEPLOY / "values.yaml", version=CHART_PINNED)
USER_LABELS = VALUES["singleuser"]["extraLabels"]  # the chart's default: network-access-hub

ACCESS = "hub.jupyter.org/network-access-"  # the labels the chart's pods carry
HUB = chart_pod("hub", "10.0.0.10", **{f"{ACCESS}{x}": "true" for x in ("singleuser", "proxy-api")})
PROXY = chart_pod("proxy", "10.0.0.11", **{f"{ACCESS}{x}": "true" for x in ("hub", "singleuser")})
ADA = chart_pod("singleuser-server", "10.0.1.1", **USER_LABELS)
GRACE = chart_pod("singleuser-server", "10.0.1.2", **USER_LABELS)
TRAEFIK = dask_pod("traefik", "traefik", "10.0.2.1")
GATEWAY = dask_pod("gateway", "gateway", "10.0.2.2")
SCHEDULER = dask_pod("scheduler-a", "dask-scheduler", "10.0.3.1", "a")
WORKER = dask_pod("worker-a", "dask-worker", "10.0.3.2", "a")
OTHER_WORKER = dask_pod("worker-b", "dask-worker", "10.0.4.2", "b")
DNS = Pod("kube-dns", "10.96.0.10", {"k8s-app": "kube-dns"}, namespace="kube-system")
METADATA = Pod("metadata", "169.254.169.254", in_cluster=False)
INTERNET = Pod("internet", "93.184.216.34", in_cluster=False)
DATABASE = Pod("database", "10.200.0.5", in_cluster=False)  # a private address


def clusters_policies() -> list[dict]:
    """What pangeohub's gateway makes for two clusters, "a" and "b" (kube_netpol.py)."""
    return [
        policy
        for name in ("a", "b")
        for policy in cluster_network_policies(
            {"metadata": {"name": name, "uid": f"uid-{name}"}}, "dask-gateway", {}
        )
    ]


@pytest.fixture(scope="module")
def network() -> Network:
    static = chart_policies(VALUES) + documents("dask-gateway-netpol.yaml")
    return Network(static + clusters_policies())


# (source, target, port, allowed); 53 is DNS over UDP, every other port TCP
PATHS = [
    # a person's server
    (ADA, HUB, 8081, True),  # the hub's API (chart)
    (ADA, HUB, 10101, True),  # scratch credentials
    (ADA, HUB, 8099, False),  # the dashboard guard is traefik's only
    (ADA, TRAEFIK, 8000, True),  # the gateway's API
    (ADA, TRAEFIK, 8786, True),  # schedulers, through the gateway's proxy
    (ADA, SCHEDULER, 8786, False),
    (ADA, SCHEDULER, 8787, False),  # dashboards only through traefik and the guard
    (ADA, SCHEDULER, 8788, False),
    (ADA, WORKER, 8787, False),
    (ADA, WORKER, 8789, False),
    (ADA, GRACE, 8888, False),  # another person's server
    (ADA, METADATA, 80, False),
    (ADA, DATABASE, 5432, False),
    (ADA, INTERNET, 443, True),
    (ADA, DNS, 53, True),
    # the gateway's proxy and the gateway
    (TRAEFIK, SCHEDULER, 8786, True),
    (TRAEFIK, SCHEDULER, 8787, True),
    (TRAEFIK, SCHEDULER, 8788, False),
    (TRAEFIK, WORKER, 8787, False),
    (TRAEFIK, HUB, 8099, True),  # forwardAuth to the dashboard guard
    (TRAEFIK, HUB, 8081, False),
    (GATEWAY, SCHEDULER, 8788, True),
    (GATEWAY, HUB, 8081, True),  # users' tokens checked with the hub
    # a cluster's scheduler
    (SCHEDULER, GATEWAY, 8000, True),
    (SCHEDULER, WORKER, 8789, True),
    (SCHEDULER, WORKER, 40123, True),  # a port Dask picked
    (SCHEDULER, WORKER, 8787, False),  # a worker's dashboard
    (SCHEDULER, METADATA, 80, False),
    (SCHEDULER, INTERNET, 443, False),
    (SCHEDULER, HUB, 10101, False),
    (SCHEDULER, ADA, 8888, False),
    (SCHEDULER, DNS, 53, True),
    # a cluster's workers
    (WORKER, SCHEDULER, 8786, True),
    (WORKER, SCHEDULER, 8787, False),
    (WORKER, SCHEDULER, 8788, True),  # its own scheduler's API (token-protected)
    (WORKER, HUB, 10101, True),  # scratch credentials for the workers
    (WORKER, HUB, 8081, False),
    (WORKER, METADATA, 80, False),
    (WORKER, METADATA, 53, False),
    (WORKER, DATABASE, 5432, False),
    (WORKER, INTERNET, 443, True),
    (WORKER, ADA, 8888, False),
    (WORKER, PROXY, 8000, False),
    (WORKER, DNS, 53, True),
    # another cluster's pods (another person's code): nothing of this cluster
    (OTHER_WORKER, WORKER, 8787, False),
    (OTHER_WORKER, WORKER, 40123, False),
    (OTHER_WORKER, SCHEDULER, 8786, False),
    (OTHER_WORKER, SCHEDULER, 8787, False),
    (OTHER_WORKER, SCHEDULER, 8788, False),
    (GATEWAY, WORKER, 8787, False),
    (HUB, SCHEDULER, 8786, False),
    # the hub and the proxy (the routes of the hub's services, at the hub's Service)
    (HUB, ADA, 8888, True),
    (HUB, PROXY, 8001, True),  # the proxy's API
    (PROXY, HUB, 8081, True),
    (PROXY, HUB, 10101, True),  # /services/scratch
    (PROXY, TRAEFIK, 8000, True),  # /services/dask-gateway
    (PROXY, ADA, 8888, True),
    (INTERNET, PROXY, 8000, True),  # the chart's public port
    (INTERNET, PROXY, 8001, False),
    (ADA, PROXY, 8001, False),
]


@pytest.mark.parametrize(
    "source, target, port, allowed",
    PATHS,
    ids=[f"{s.name}->{t.name}:{p}" for s, t, p, _ in PATHS],
)
def test_network_path(network, source, target, port, allowed):
    protocol = "UDP" if port == 53 else "TCP"
    assert network.allows(source, target, port, protocol) is allowed


def test_user_pods_egress_is_the_charts_default_plus_hub_scratch_and_gateway():
    chart_default = load_values(version=CHART_PINNED)  # no values file: the chart's own
    ours = Network(chart_policies(VALUES))
    theirs = Network(chart_policies(chart_default))
    added = {(HUB.ip, 10101), (TRAEFIK.ip, 8000), (TRAEFIK.ip, 8786)}
    targets = [HUB, PROXY, GRACE, TRAEFIK, GATEWAY, SCHEDULER, WORKER, DNS]
    targets += [METADATA, INTERNET, DATABASE]
    for target in targets:
        for port in (53, 80, 443, 5432, 8000, 8001, 8081, 8099, 8786, 8787, 8788, 8888, 10101):
            protocol = "UDP" if port == 53 else "TCP"
            mine = ours._allowed(ADA, target, target, port, protocol, "Egress")
            default = theirs._allowed(ADA, target, target, port, protocol, "Egress")
            assert not mine or default or (target.ip, port) in added, (target.name, port)
            assert mine or not default, f"narrower than the chart: {target.name}:{port}"
    assert all(ours.allows(ADA, t, p) for t, p in ((HUB, 10101), (TRAEFIK, 8000), (TRAEFIK, 8786)))


def test_every_network_policy_is_valid_kubernetes():
    policies = chart_policies(VALUES) + documents("dask-gateway-netpol.yaml")
    policies += clusters_policies()
    assert len(policies) == 9
    for policy in policies:
        doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **policy}
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --- RBAC -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def access() -> Access:
    return Access(documents("rbac.yaml") + documents("dask-gateway-rbac.yaml"))


def test_rbac_manifests_are_valid_kubernetes():
    for name in ("rbac.yaml", "dask-gateway-rbac.yaml"):
        for doc in documents(name):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_chart_uses_the_gateways_own_service_account():
    values = yaml.safe_load((DEPLOY / "dask-gateway-values.yaml").read_text())
    accounts = [d["metadata"]["name"] for d in documents("dask-gateway-rbac.yaml")]
    assert values["rbac"]["gateway"]["serviceAccountName"] == accounts[0]


GATEWAY_SA = "pangeohub-dask-gateway"
REQUESTS = [
    # what dask-gateway-server and pangeohub's backend do
    ("list", "daskclusters", None, "gateway.dask.org", True),  # its informer: all namespaces
    ("watch", "daskclusters", None, "gateway.dask.org", True),
    ("create", "daskclusters", "pangeo", "gateway.dask.org", True),
    ("patch", "daskclusters", "pangeo", "gateway.dask.org", True),
    ("delete", "daskclusters", "pangeo", "gateway.dask.org", True),
    ("get", "secrets", "pangeo", "", True),  # its clusters' credentials
    ("create", "secrets", "pangeo", "", True),  # the servers' records
    ("update", "secrets", "pangeo", "", True),
    ("delete", "secrets", "pangeo", "", True),
    ("list", "pods", "pangeo", "", True),
    ("watch", "pods", "pangeo", "", True),
    ("delete", "pods", "pangeo", "", True),
    ("create", "networkpolicies", "pangeo", "networking.k8s.io", True),  # each cluster's
    # what it may not
    ("delete", "networkpolicies", "pangeo", "networking.k8s.io", False),  # GC deletes them
    ("create", "networkpolicies", "kube-system", "networking.k8s.io", False),
    ("create", "daskclusters", "kube-system", "gateway.dask.org", False),
    ("get", "secrets", "kube-system", "", False),
    ("list", "secrets", None, "", False),  # every Secret of the cluster
    ("watch", "secrets", "pangeo", "", False),
    ("patch", "secrets", "pangeo", "", False),
    ("list", "pods", None, "", False),
    ("create", "pods", "pangeo", "", False),
    ("delete", "pods", "kube-system", "", False),
    ("create", "persistentvolumeclaims", "pangeo", "", False),
    ("get", "configmaps", "pangeo", "", False),
    ("create", "roles", "pangeo", "rbac.authorization.k8s.io", False),
]


@pytest.mark.parametrize(
    "verb, resource, namespace, group, allowed",
    REQUESTS,
    ids=[f"{v}-{r}-{n or 'all'}" for v, r, n, _, _ in REQUESTS],
)
def test_gateway_service_account(access, verb, resource, namespace, group, allowed):
    assert access.allows(GATEWAY_SA, verb, resource, namespace, group=group) is allowed


@pytest.mark.parametrize(
    "verb, resource, allowed",
    [
        ("create", "pods", True),
        ("delete", "pods", True),
        ("watch", "events", True),
        ("create", "persistentvolumeclaims", True),
        ("get", "secrets", False),
        ("list", "secrets", False),
        ("create", "services", False),
        ("delete", "events", False),
    ],
)
def test_hub_service_account_outside_the_chart(access, verb, resource, allowed):
    assert access.allows("hub", verb, resource) is allowed
    assert not access.allows("hub", verb, resource, namespace="kube-system")
