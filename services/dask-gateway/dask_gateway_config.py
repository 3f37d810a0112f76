"""dask-gateway-server as a pangeohub hub-managed service (the local backend).

The hub starts it (jupyterhub_config.d/60-dask-gateway.py) with JUPYTERHUB_SERVICE_URL,
JUPYTERHUB_SERVICE_PREFIX, JUPYTERHUB_API_URL/TOKEN and pangeohub's PANGEOHUB_* settings
in its environment. An admin changes anything here from the file named by
$PANGEOHUB_GATEWAY_CONFIG (loaded last), e.g. c.GatewayPolicy bounds and limits.
"""

import base64
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlparse

from pangeohub.state import StateDirectory

c = get_config()  # noqa: F821

# Authentication: JupyterHub tokens, with the access:services!service=<name> scope.
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.JupyterHubAuthenticator"
c.JupyterHubAuthenticator.jupyterhub_service_name = os.environ.get(
    "JUPYTERHUB_SERVICE_NAME", "dask-gateway"
)
c.JupyterHubAuthenticator.use_service_access_scopes = True

# Local processes, with pangeohub's options, bounds and per-user limits.
c.DaskGateway.backend_class = "pangeohub.gateway.backend.PangeoLocalBackend"
c.ClusterConfig.scheduler_cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
c.ClusterConfig.worker_cmd = [sys.executable, "-m", "distributed.cli.dask_worker"]
c.ClusterConfig.scheduler_cores = 1
c.ClusterConfig.scheduler_memory = "1 G"

# Where it listens: the hub routes JUPYTERHUB_SERVICE_PREFIX to JUPYTERHUB_SERVICE_URL.
service_url = urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:8010"))
c.Proxy.address = f"{service_url.hostname}:{service_url.port}"
c.Proxy.tcp_address = os.environ.get("PANGEOHUB_GATEWAY_TCP_ADDRESS", "127.0.0.1:8786")
c.Proxy.prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/dask-gateway/")
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

# Images users may run workers on: those the hub reports for their servers (kept here,
# with the environment for their workers), and the hub's profile images.
c.PangeoLocalBackend.servers_file = str(gateway_dir / "servers.json")
c.GatewayPolicy.server_images = json.loads(os.environ.get("PANGEOHUB_GATEWAY_SERVER_IMAGES", "[]"))

override = os.environ.get("PANGEOHUB_GATEWAY_CONFIG")
if override:
    if not Path(override).is_file():
        raise SystemExit(f"PANGEOHUB_GATEWAY_CONFIG={override} is not a file; fix the path.")
    load_subconfig(str(Path(override).resolve()))  # noqa: F821
