"""pangeohub's options and per-user limits on dask-gateway-server's Kubernetes backend.

Use in the dask-gateway Helm chart's ``gateway.extraConfig``::

    c.DaskGateway.backend_class = "pangeohub.gateway.kubernetes.PangeoKubeBackend"
"""

from dask_gateway_server.backends.kubernetes import KubeBackend

from .backend import PangeoBackendMixin


class PangeoKubeBackend(PangeoBackendMixin, KubeBackend):
    """Dask clusters as pods, with pangeohub's options, bounds and per-user limits."""
