"""Each Dask cluster's own network policies, made with it and deleted with it.

A NetworkPolicy cannot say "the pods of the same cluster as the target": its selectors
hold fixed labels. So the gateway makes two policies per cluster, owned by the cluster's
DaskCluster object (Kubernetes deletes them with it), that admit:

- to the scheduler: the cluster's own pods on Dask's ports (8786 and the scheduler's API,
  not the dashboard), the gateway's proxy (traefik) on 8786 and the dashboard (8787),
  the gateway on the scheduler's API (8788);
- to the workers: the cluster's own pods on every port but the dashboards' (8787).

Nothing else reaches a cluster's pods: another person's workers, servers and the hub do
not. What the pods themselves may reach (no cloud metadata, scratch, DNS) is in the
admin's static policies (deploy/dask-gateway-netpol.yaml). The labels of traefik's and
the gateway's pods are the dask-gateway chart's, in the chart's namespace (which may be
another than the clusters': the peers name it by ``namespaceSelector``).
"""

from __future__ import annotations

CHART_NAME = {"app.kubernetes.io/name": "dask-gateway"}
DASHBOARD = 8787
# every port but the dashboards' (endPort: Kubernetes 1.25 and a network plugin with it)
DASK_PORTS = [
    {"port": 1, "endPort": DASHBOARD - 1, "protocol": "TCP"},
    {"port": DASHBOARD + 1, "endPort": 65535, "protocol": "TCP"},
]


def cluster_network_policies(
    cluster: dict, instance: str, labels: dict, chart_namespace: str
) -> list[dict]:
    """The NetworkPolicies of the DaskCluster ``cluster`` (its object, as the API returned
    it) of gateway ``instance``; ``labels`` are the gateway's common labels,
    ``chart_namespace`` the namespace of the chart's gateway and traefik."""
    name, uid = cluster["metadata"]["name"], cluster["metadata"]["uid"]
    own = {"gateway.dask.org/instance": instance, "gateway.dask.org/cluster": name}
    owner = {
        "apiVersion": cluster.get("apiVersion", "gateway.dask.org/v1alpha1"),
        "kind": "DaskCluster",
        "name": name,
        "uid": uid,
        "blockOwnerDeletion": True,
    }

    def policy(component: str, ingress: list[dict]) -> dict:
        selector = {**own, "app.kubernetes.io/component": component}
        return {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {
                "name": f"{component}-{name}"[:63],
                "labels": {**labels, **own},
                "ownerReferences": [owner],
            },
            "spec": {
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress"],
                "ingress": ingress,
            },
        }

    def chart_pods(component: str) -> dict:
        return {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": chart_namespace}},
            "podSelector": {
                "matchLabels": {**CHART_NAME, "app.kubernetes.io/component": component}
            },
        }

    own_pods = [{"podSelector": {"matchLabels": own}}]
    return [
        policy(
            "dask-scheduler",
            [
                {"from": own_pods, "ports": DASK_PORTS},
                {"from": [chart_pods("traefik")], "ports": [{"port": 8786}, {"port": DASHBOARD}]},
                {"from": [chart_pods("gateway")], "ports": [{"port": 8788}]},
            ],
        ),
        policy("dask-worker", [{"from": own_pods, "ports": DASK_PORTS}]),
    ]
