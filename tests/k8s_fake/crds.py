"""The custom resource definitions the dask-gateway chart installs (its ``crds/``), in the
shape the API server takes them: DaskCluster (with a status subresource) and traefik's
IngressRoute, IngressRouteTCP and Middleware. Schemas are left open, as the chart's are
for ``spec`` and ``status``."""

from __future__ import annotations


def crd(group: str, version: str, kind: str, plural: str, status: bool = False) -> dict:
    served = {
        "name": version,
        "served": True,
        "storage": True,
        "schema": {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        },
    }
    if status:
        served["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [served],
        },
    }


DASK_GATEWAY_CRDS = [
    crd("gateway.dask.org", "v1alpha1", "DaskCluster", "daskclusters", status=True),
    crd("traefik.io", "v1alpha1", "IngressRoute", "ingressroutes"),
    crd("traefik.io", "v1alpha1", "IngressRouteTCP", "ingressroutetcps"),
    crd("traefik.io", "v1alpha1", "Middleware", "middlewares"),
    # not a custom resource on a real API server (networking.k8s.io is built in), served
    # here the same way: pangeohub's gateway makes each cluster's policies
    crd("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies"),
]
