"""The gateway's DaskCluster informer, held to the clusters' namespace.

dask-gateway-server's KubeBackend lists and watches DaskClusters across all namespaces
(``list_cluster_custom_object``), which needs a ClusterRole. Its clusters are all in one
namespace (``KubeClusterConfig.namespace``), so :class:`NamespacedCustomObjects`, the
backend's custom-objects client, answers that one call from that namespace
(``list_namespaced_custom_object``, the same list and watch): the gateway's grants on
DaskClusters are then a Role there. Every other call is the client's own.
"""

from __future__ import annotations

from kubernetes_asyncio import client


class NamespacedCustomObjects(client.CustomObjectsApi):
    """A CustomObjectsApi whose cluster-wide list (and watch) reads one namespace."""

    def __init__(self, api_client, namespace: str):
        super().__init__(api_client=api_client)
        self.namespace = namespace

    def list_cluster_custom_object(self, group, version, plural, **kwargs):
        return self.list_namespaced_custom_object(group, version, self.namespace, plural, **kwargs)
