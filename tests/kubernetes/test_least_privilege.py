"""Least privilege in the cluster: the deploy files' network policies and RBAC, evaluated.

The fake API server enforces neither, so each manifest is validated against the API's
schema and its rules are evaluated (:mod:`tests.kubernetes.netpol`) together with the
Zero to JupyterHub chart's own policies, rendered from the values with the chart's
defaults: what must be reachable is, and what must not be is not.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

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


def dask_pod(
    name: str, component: str, ip: str, cluster: str | None = None, namespace: str | None = None
) -> Pod:
    """A pod of the dask-gateway chart or, with ``cluster``, of a Dask cluster (both in
    the clusters' namespace, where the release is)."""
    labels = {"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/component": component}
    if cluster:
        labels.update(
            {"gateway.dask.org/instance": "dask-gateway", "gateway.dask.org/cluster": cluster}
        )
    if component == "gateway":  # the dask-gateway chart labels its gateway pods so
        labels["hub.jupyter.org/network-access-hub"] = "true"
    return Pod(name, ip, labels, namespace=namespace or CLUSTERS_NS)


RELEASE = "pangeo"  # the hub's namespace: the hub, its Secret, the servers
CLUSTERS_NS = "pangeo-dask"  # the dask-gateway release and its clusters (gateway.backend.namespace)
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
# pods wearing the chart's or a cluster's labels in a namespace where they are not its
ELSEWHERE_TRAEFIK = dask_pod("traefik-elsewhere", "traefik", "10.0.5.1", namespace="other")
ELSEWHERE_GATEWAY = dask_pod("gateway-elsewhere", "gateway", "10.0.5.2", namespace=RELEASE)
ELSEWHERE_HUB_TRAEFIK = dask_pod("traefik-in-hub-ns", "traefik", "10.0.5.4", namespace=RELEASE)
ELSEWHERE_WORKER = dask_pod("worker-elsewhere", "dask-worker", "10.0.5.3", "a", RELEASE)
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
            {"metadata": {"name": name, "uid": f"uid-{name}", "namespace": CLUSTERS_NS}},
            "dask-gateway",
            {},
            CLUSTERS_NS,  # the gateway's and traefik's namespace
        )
    ]


def in_clusters_namespace(policy: dict) -> dict:
    """A policy as the gateway makes it: in the clusters' namespace."""
    return {**policy, "metadata": {**policy["metadata"], "namespace": CLUSTERS_NS}}


@pytest.fixture(scope="module")
def network() -> Network:
    static = chart_policies(VALUES) + documents("dask-gateway-netpol.yaml")
    made = [in_clusters_namespace(p) for p in clusters_policies()]
    return Network(static + made)


def test_the_dask_pods_policies_are_in_the_clusters_namespace():
    static = documents("dask-gateway-netpol.yaml")
    assert {p["metadata"]["namespace"] for p in static} == {CLUSTERS_NS}
    values = yaml.safe_load((DEPLOY / "dask-gateway-values.yaml").read_text())
    assert values["gateway"]["backend"]["namespace"] == CLUSTERS_NS


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
    # the chart's or a cluster's labels in the wrong namespace admit nothing
    (ELSEWHERE_TRAEFIK, SCHEDULER, 8786, False),
    (ELSEWHERE_TRAEFIK, SCHEDULER, 8787, False),
    (ELSEWHERE_GATEWAY, SCHEDULER, 8788, False),
    (ELSEWHERE_HUB_TRAEFIK, HUB, 8099, False),  # the guard is for the release's traefik
    (ELSEWHERE_HUB_TRAEFIK, SCHEDULER, 8787, False),
    (ELSEWHERE_TRAEFIK, HUB, 8099, False),
    (ELSEWHERE_TRAEFIK, HUB, 8081, False),
    (ADA, ELSEWHERE_HUB_TRAEFIK, 8000, False),  # user pods' egress: the release's traefik
    (ELSEWHERE_WORKER, HUB, 10101, False),
    (SCHEDULER, ELSEWHERE_GATEWAY, 8000, False),
    (WORKER, ELSEWHERE_WORKER, 40123, False),
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
    policies += [in_clusters_namespace(p) for p in clusters_policies()]
    assert len(policies) == 9
    for policy in policies:
        doc = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", **policy}
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --- RBAC -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def access() -> Access:
    return Access(documents("rbac.yaml") + documents("dask-gateway-rbac.yaml"), RELEASE)


def test_the_release_is_in_the_clusters_namespace():
    """The dask-gateway chart's pods (the gateway, the controller, traefik) run beside
    the clusters, so traefik (which watches the Secrets of every namespace it serves
    routes from) needs no right in the hub's namespace."""
    values = yaml.safe_load((DEPLOY / "dask-gateway-values.yaml").read_text())
    hub_api = urlsplit(values["gateway"]["auth"]["jupyterhub"]["apiUrl"])
    assert hub_api.hostname == f"hub.{RELEASE}", "the hub's Service, named with its namespace"
    gateway = VALUES["hub"]["config"]["GatewayService"]
    for key in ("service_url", "address", "proxy_address"):
        assert urlsplit(gateway[key]).hostname == f"traefik-dask-gateway.{CLUSTERS_NS}", key


def test_the_workers_reach_scratch_at_a_name_of_the_hubs_namespace():
    """The Dask workers get their server's scratch address, and run in the clusters'
    namespace, where a bare service name would name a Service of that namespace."""
    url = urlsplit(VALUES["hub"]["config"]["ScratchEnvironment"]["service_url"])
    assert (url.hostname, url.port) == (f"hub.{RELEASE}", 10101)
    assert Network(chart_policies(VALUES)).allows(WORKER, HUB, url.port)


def test_rbac_manifests_are_valid_kubernetes():
    for name in ("rbac.yaml", "dask-gateway-rbac.yaml"):
        for doc in documents(name):
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_the_chart_uses_the_gateways_and_the_controllers_own_service_accounts():
    values = yaml.safe_load((DEPLOY / "dask-gateway-values.yaml").read_text())
    accounts = {
        d["metadata"]["name"]: d["metadata"]["namespace"]
        for d in documents("dask-gateway-rbac.yaml")
        if d["kind"] == "ServiceAccount"
    }
    assert accounts == {GATEWAY_SA: C, CONTROLLER_SA: C, TRAEFIK_SA: C}
    assert values["rbac"]["gateway"]["serviceAccountName"] == GATEWAY_SA
    assert values["rbac"]["controller"]["serviceAccountName"] == CONTROLLER_SA
    assert values["rbac"]["traefik"]["serviceAccountName"] == TRAEFIK_SA


GATEWAY_SA = "pangeohub-dask-gateway"
CONTROLLER_SA = "pangeohub-dask-controller"
TRAEFIK_SA = "pangeohub-dask-traefik"
DASK = "gateway.dask.org"
NET = "networking.k8s.io"
TRAEFIK_CRDS = "traefik.io"
C = CLUSTERS_NS
# (verb, resource, namespace (None: all), name, API group, allowed)
GATEWAY_REQUESTS = [
    # what dask-gateway-server and pangeohub's backend do, in the clusters' namespace
    ("list", "daskclusters", C, None, DASK, True),  # its informer, held to this namespace
    ("watch", "daskclusters", C, None, DASK, True),
    ("get", "daskclusters", C, "x", DASK, True),  # to make the cluster's network policies
    ("create", "daskclusters", C, None, DASK, True),
    ("patch", "daskclusters", C, "x", DASK, True),
    ("delete", "daskclusters", C, "x", DASK, True),
    ("get", "secrets", C, "dask-credentials-x", "", True),  # its clusters' credentials
    ("list", "secrets", C, None, "", True),  # the servers' records, after a restart
    ("create", "secrets", C, None, "", True),
    ("update", "secrets", C, "pangeohub-server-x", "", True),
    ("delete", "secrets", C, "pangeohub-server-x", "", True),
    ("list", "pods", C, None, "", True),  # the clusters' pods: the limits count them
    ("watch", "pods", C, None, "", True),
    ("delete", "pods", C, "dask-worker-x", "", True),  # workers that cannot start
    ("create", "networkpolicies", C, None, NET, True),  # each cluster's
    ("get", "pods", RELEASE, "jupyter-ada", "", True),  # a user's server pod
    # nothing on the hub's Secrets, nor any Secret outside the clusters' namespace
    ("get", "secrets", RELEASE, "hub", "", False),
    ("list", "secrets", RELEASE, None, "", False),
    ("watch", "secrets", RELEASE, None, "", False),
    ("get", "secrets", RELEASE, "api-dask-gateway", "", False),
    ("get", "secrets", "kube-system", "x", "", False),
    ("list", "secrets", None, None, "", False),  # every Secret of the cluster
    # nor more in the hub's namespace than reading a pod
    ("list", "pods", RELEASE, None, "", False),
    ("watch", "pods", RELEASE, None, "", False),
    ("delete", "pods", RELEASE, "jupyter-ada", "", False),
    ("create", "daskclusters", RELEASE, None, DASK, False),
    ("list", "daskclusters", RELEASE, None, DASK, False),
    ("create", "networkpolicies", RELEASE, None, NET, False),
    ("get", "persistentvolumeclaims", RELEASE, "claim-ada", "", False),
    # nor anything cluster-wide
    ("list", "daskclusters", None, None, DASK, False),
    ("watch", "daskclusters", None, None, DASK, False),
    ("list", "pods", None, None, "", False),
    # nor more than it needs in the clusters' namespace
    ("delete", "networkpolicies", C, "x", NET, False),  # GC deletes them
    ("watch", "secrets", C, None, "", False),
    ("patch", "secrets", C, "x", "", False),
    ("create", "pods", C, None, "", False),  # the controller makes them
    ("create", "persistentvolumeclaims", C, None, "", False),
    ("get", "configmaps", C, "x", "", False),
    ("create", "roles", C, None, "rbac.authorization.k8s.io", False),
    ("create", "daskclusters", "kube-system", None, DASK, False),
    ("delete", "pods", "kube-system", "x", "", False),
]
CONTROLLER_REQUESTS = [
    # its informers: dask-gateway's controller lists and watches across all namespaces
    ("list", "daskclusters", None, None, DASK, True),
    ("watch", "daskclusters", None, None, DASK, True),
    ("list", "pods", None, None, "", True),
    ("watch", "pods", None, None, "", True),
    ("list", "endpoints", None, None, "", True),
    ("watch", "endpoints", None, None, "", True),
    # what it makes for each cluster, in the clusters' namespace
    ("patch", "daskclusters/status", C, "x", DASK, True),
    ("delete", "daskclusters", C, "x", DASK, True),  # expired records of stopped clusters
    ("create", "pods", C, None, "", True),
    ("delete", "pods", C, "dask-worker-x", "", True),
    ("create", "secrets", C, None, "", True),
    ("delete", "secrets", C, "dask-credentials-x", "", True),
    ("create", "services", C, None, "", True),
    ("create", "ingressroutes", C, None, TRAEFIK_CRDS, True),
    ("create", "ingressroutetcps", C, None, TRAEFIK_CRDS, True),
    # no Secret is read anywhere, the hub's least
    ("get", "secrets", RELEASE, "hub", "", False),
    ("list", "secrets", RELEASE, None, "", False),
    ("get", "secrets", C, "dask-credentials-x", "", False),
    ("list", "secrets", None, None, "", False),
    ("create", "secrets", RELEASE, None, "", False),
    ("delete", "secrets", RELEASE, "hub", "", False),
    # no write outside the clusters' namespace, no read beyond its informers' lists
    ("create", "pods", RELEASE, None, "", False),
    ("delete", "pods", RELEASE, "jupyter-ada", "", False),
    ("create", "services", RELEASE, None, "", False),
    ("create", "ingressroutes", RELEASE, None, TRAEFIK_CRDS, False),
    ("patch", "daskclusters/status", RELEASE, "x", DASK, False),
    ("get", "pods", RELEASE, "hub-x", "", False),
    ("create", "pods", "kube-system", None, "", False),
    ("create", "daskclusters", C, None, DASK, False),  # the gateway makes them
    ("create", "networkpolicies", C, None, NET, False),
    ("get", "configmaps", RELEASE, "x", "", False),
]


TRAEFIK_REQUESTS = [
    # what traefik's CRD provider lists and watches, in the one namespace it is told to
    # watch (the release's: the chart's, the controller's and the guard's objects)
    *[
        (verb, kind, C, None, TRAEFIK_CRDS, True)
        for verb in ("list", "watch")
        for kind in ("ingressroutes", "ingressroutetcps", "middlewares", "traefikservices")
    ],
    ("list", "services", C, None, "", True),
    ("watch", "services", C, None, "", True),
    ("list", "endpointslices", C, None, "discovery.k8s.io", True),
    ("watch", "endpointslices", C, None, "discovery.k8s.io", True),
    ("list", "secrets", C, None, "", True),  # its provider watches them where it serves
    ("watch", "secrets", C, None, "", True),
    # nothing in the hub's namespace, the hub's Secret least
    ("get", "secrets", RELEASE, "hub", "", False),
    ("list", "secrets", RELEASE, None, "", False),
    ("watch", "secrets", RELEASE, None, "", False),
    ("list", "services", RELEASE, None, "", False),
    ("list", "ingressroutes", RELEASE, None, TRAEFIK_CRDS, False),
    ("list", "middlewares", RELEASE, None, TRAEFIK_CRDS, False),
    ("get", "pods", RELEASE, "jupyter-ada", "", False),
    # nothing cluster-wide (the chart's ClusterRole: Secrets, Services, nodes, routes)
    ("list", "secrets", None, None, "", False),
    ("watch", "secrets", None, None, "", False),
    ("get", "secrets", "kube-system", "x", "", False),
    ("list", "nodes", None, None, "", False),
    ("list", "ingressclasses", None, None, NET, False),
    ("list", "ingressroutes", None, None, TRAEFIK_CRDS, False),
    ("list", "services", None, None, "", False),
    # and no write anywhere
    ("create", "secrets", C, None, "", False),
    ("delete", "secrets", C, "dask-credentials-x", "", False),
    ("create", "ingressroutes", C, None, TRAEFIK_CRDS, False),
    ("patch", "middlewares", C, "x", TRAEFIK_CRDS, False),
    ("list", "pods", C, None, "", False),
    ("list", "daskclusters", C, None, DASK, False),
]


def _ids(requests):
    return [f"{v}-{r}-{n or 'all'}-{name or ''}" for v, r, n, name, _, _ in requests]


@pytest.mark.parametrize(
    "verb, resource, namespace, name, group, allowed", GATEWAY_REQUESTS, ids=_ids(GATEWAY_REQUESTS)
)
def test_gateway_service_account(access, verb, resource, namespace, name, group, allowed):
    allowed_now = access.allows(GATEWAY_SA, verb, resource, namespace, name, group, account_ns=C)
    assert allowed_now is allowed


@pytest.mark.parametrize(
    "verb, resource, namespace, name, group, allowed",
    CONTROLLER_REQUESTS,
    ids=_ids(CONTROLLER_REQUESTS),
)
def test_controller_service_account(access, verb, resource, namespace, name, group, allowed):
    allowed_now = access.allows(CONTROLLER_SA, verb, resource, namespace, name, group, account_ns=C)
    assert allowed_now is allowed


@pytest.mark.parametrize(
    "verb, resource, namespace, name, group, allowed", TRAEFIK_REQUESTS, ids=_ids(TRAEFIK_REQUESTS)
)
def test_traefik_service_account(access, verb, resource, namespace, name, group, allowed):
    allowed_now = access.allows(TRAEFIK_SA, verb, resource, namespace, name, group, account_ns=C)
    assert allowed_now is allowed


def test_traefik_watches_only_the_namespaces_its_roles_cover():
    """traefik's provider lists and watches routes, Services, EndpointSlices and Secrets
    in every namespace it watches and gives up when one is refused: it is told to watch
    the release's namespace alone and no cluster-scoped kind, where its Role is, which is
    not the hub's namespace."""
    values = yaml.safe_load((DEPLOY / "dask-gateway-values.yaml").read_text())
    arguments = values["traefik"]["additionalArguments"]
    (watched,) = [a for a in arguments if a.startswith("--providers.kubernetescrd.namespaces=")]
    namespaces = watched.split("=", 1)[1].split(",")
    assert namespaces == [C]
    assert "--providers.kubernetescrd.disableClusterScopeResources=true" in arguments
    bound = {
        d["metadata"]["namespace"]
        for d in documents("dask-gateway-rbac.yaml")
        if d["kind"] == "RoleBinding" and any(s["name"] == TRAEFIK_SA for s in d["subjects"])
    }
    assert bound == set(namespaces)
    assert not any(
        s["name"] == TRAEFIK_SA
        for d in documents("dask-gateway-rbac.yaml")
        if d["kind"] == "ClusterRoleBinding"
        for s in d["subjects"]
    ), "no ClusterRole for traefik"
    middlewares = [a for a in arguments if a.startswith("--entrypoints.web.http.middlewares=")]
    for argument in middlewares:  # "<namespace>-<name>@kubernetescrd": in a watched one
        for reference in argument.split("=", 1)[1].split(","):
            assert any(reference.startswith(f"{ns}-") for ns in namespaces), reference


def test_what_the_dask_accounts_may_do_with_secrets_is_in_the_clusters_namespace_only():
    """Every rule granting anything on Secrets to the gateway, the controller or traefik
    is a Role in the clusters' namespace, where no Secret of the hub's chart lives."""
    docs = documents("dask-gateway-rbac.yaml")
    for doc in docs:
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        if any({"secrets", "*"} & set(rule["resources"]) for rule in doc["rules"]):
            assert (doc["kind"], doc["metadata"].get("namespace")) == ("Role", C), doc
    clusters = [d for d in docs if d["kind"] == "ClusterRole"]
    for doc in clusters:  # the controller's informers: list and watch only
        assert {v for rule in doc["rules"] for v in rule["verbs"]} == {"list", "watch"}
        assert not {"secrets", "*"} & {r for rule in doc["rules"] for r in rule["resources"]}


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


# --- the docs' commands ---------------------------------------------------------------------

DOCS = DEPLOY.parent / "docs"
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def dask_gateway_commands(page: str) -> list[list[str]]:
    """The commands of the page's bash block that applies dask-gateway-rbac.yaml."""
    blocks = re.findall(r"```bash\n(.*?)```", (DOCS / page).read_text(), re.S)
    (block,) = [b for b in blocks if "dask-gateway-rbac.yaml" in b]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines() if line]


def test_the_docs_dask_gateway_commands_apply_each_file_where_it_belongs():
    """docs/kubernetes.md's commands, in order: the RBAC (and the clusters' namespace)
    before the chart, the chart in the clusters' namespace, then the policies and the
    middleware; every object lands in the namespace the layout says (kubectl refuses an
    object naming another namespace than -n, and puts one naming none in -n's or the
    context's)."""
    commands = dask_gateway_commands("kubernetes.md")
    assert dask_gateway_commands("dask-gateway.md") == commands, "the two pages agree"
    files = [c[c.index("-f") + 1] for c in commands if c[:2] == ["kubectl", "apply"]]
    helm = [i for i, c in enumerate(commands) if c[:3] == ["helm", "upgrade", "--install"]]
    (chart,) = helm
    applied = {c[c.index("-f") + 1]: i for i, c in enumerate(commands) if "apply" in c}
    assert files == [
        "deploy/dask-gateway-rbac.yaml",
        "deploy/dask-gateway-netpol.yaml",
        "deploy/dask-dashboards-middleware.yaml",
    ]
    assert (
        applied["deploy/dask-gateway-rbac.yaml"]
        < chart
        < applied["deploy/dask-gateway-netpol.yaml"]
    )
    helm_ns = commands[chart][commands[chart].index("--namespace") + 1]
    assert helm_ns == CLUSTERS_NS
    version = commands[chart][commands[chart].index("--version") + 1]
    gateway_recipe = (DEPLOY / "Dockerfile.gateway").read_text()
    assert f"dask-gateway-server:{version}" in gateway_recipe, "the chart of the image's server"
    assert "deploy/dask-gateway-values.yaml" in commands[chart]
    landed: dict[str, set] = {}
    for command in commands:
        if command[:2] != ["kubectl", "apply"]:
            continue
        given = command[command.index("-n") + 1] if "-n" in command else None
        name = command[command.index("-f") + 1]
        for doc in documents(name.removeprefix("deploy/")):
            if doc["kind"] in CLUSTER_SCOPED:
                continue
            named = doc["metadata"].get("namespace")
            assert named or given, f"{name}: {doc['metadata']['name']} has no namespace"
            assert not (named and given) or named == given, f"kubectl refuses {name}"
            landed.setdefault(name, set()).add(named or given)
    assert landed == {
        "deploy/dask-gateway-rbac.yaml": {RELEASE, CLUSTERS_NS},
        "deploy/dask-gateway-netpol.yaml": {CLUSTERS_NS},
        "deploy/dask-dashboards-middleware.yaml": {CLUSTERS_NS},  # traefik's watched one
    }
    made = [d["metadata"]["name"] for d in documents("dask-gateway-rbac.yaml")]
    assert made[0] == CLUSTERS_NS, "the clusters' namespace is made first"
