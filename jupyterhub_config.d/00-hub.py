"""Where the hub listens, and its proxy (the local configurable-http-proxy)."""

import os
from pathlib import Path

c = get_config()  # noqa: F821

c.JupyterHub.ip = os.environ.get("PANGEOHUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("PANGEOHUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("PANGEOHUB_HUB_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = (
    f"http://127.0.0.1:{os.environ.get('PANGEOHUB_PROXY_API_PORT', '8001')}"
)

# The set-up installs configurable-http-proxy into the bundle's node_modules.
local_proxy = (
    Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "configurable-http-proxy"
)
if local_proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(local_proxy)]
