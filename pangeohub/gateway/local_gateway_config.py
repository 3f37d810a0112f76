"""dask-gateway-server as a pangeohub hub-managed service: the gateway the hub starts.

The bundle's defaults for the gateway the hub starts. The hub (``pangeohub.configure``)
starts it with where to listen on its command line (``--Proxy.address`` and friends) and
writes the rest of the gateway's settings from the hub's own configuration (the admin's
file: ``c.GatewayPolicy`` bounds and limits, ``c.ClusterConfig``, ...) to
``<state dir>/services/<service name>.json``, loaded last here.
"""

import base64
import os
import sys

from traitlets.config.loader import JSONFileConfigLoader

from pangeohub.isolation.gateway import local_backend_class
from pangeohub.state import StateDirectory

c = get_config()  # noqa: F821

service_name = os.environ.get("JUPYTERHUB_SERVICE_NAME", "dask-gateway")

# Authentication: JupyterHub tokens, with the access:services!service=<name> scope.
c.DaskGateway.authenticator_class = "pangeohub.gateway.auth.PangeoJupyterHubAuthenticator"
c.JupyterHubAuthenticator.jupyterhub_service_name = service_name
c.JupyterHubAuthenticator.use_service_access_scopes = True
# A client's gateway session is re-checked with the hub every 10 s (dask-gateway's default
# is 300 s), so someone who loses access at the hub's refresh loses the gateway too.
c.JupyterHubAuthenticator.cache_max_age = 10

# Local processes, with pangeohub's options, bounds and per-user limits; as root each
# cluster runs as its user's account (dask-gateway-server's LocalBackend).
c.DaskGateway.backend_class = local_backend_class()
c.ClusterConfig.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
c.ClusterConfig.scheduler_cores = 1
c.ClusterConfig.scheduler_memory = "1 G"
c.DaskGateway.address = "127.0.0.1:0"

# State in a database file in the hub's state directory; keys generated once, kept.
state = StateDirectory.from_env()
gateway_dir = state.subdir("dask-gateway")
c.PangeoLocalBackend.db_url = f"sqlite:///{gateway_dir / 'gateway.sqlite'}"
c.PangeoLocalBackend.db_encrypt_keys = [
    base64.urlsafe_b64encode(bytes.fromhex(state.secret("dask_gateway_db_key"))).decode()
]
# Stopping the hub stops every server, and so every cluster (the gateway stops with the
# hub). If the gateway dies instead, its clusters keep running and it takes them back
# from the database when it starts again.
c.PangeoLocalBackend.stop_clusters_on_shutdown = True
c.PangeoLocalBackend.cluster_heartbeat_period = 5
c.PangeoLocalBackend.cluster_status_period = 10
c.PangeoLocalBackend.worker_status_period = 10
# What the hub reports about users' running servers (image, workers' environment).
c.PangeoLocalBackend.servers_file = str(gateway_dir / "servers.json")

# The hub's settings for this gateway, last: the admin's choices win over the above.
settings = state.path / "services" / f"{service_name}.json"
if settings.exists():
    c.merge(JSONFileConfigLoader(settings.name, path=str(settings.parent)).load_config())
if "backend_class" not in c.DaskGateway:
    c.DaskGateway.backend_class = local_backend_class(c)
