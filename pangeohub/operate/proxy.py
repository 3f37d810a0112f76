"""configurable-http-proxy as its own service: the command JupyterHub would run.

The hub unit runs JupyterHub with ``ConfigurableHTTPProxy.should_start = False``; this
starts the same proxy, with the same token, ports and error page, from the same
configuration, so the routes outlive a restart of the hub.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .hub import Hub


def proxy_command(hub: Hub) -> tuple[list[str], dict[str, str]]:
    """The proxy's command line and the environment it adds (its API token)."""
    c = hub.config
    proxy = c.ConfigurableHTTPProxy
    command = list(proxy.get("command", ["configurable-http-proxy"]))
    api = urlsplit(proxy.get("api_url", "http://127.0.0.1:8001"))
    base_url = c.JupyterHub.get("base_url", "/").rstrip("/")
    hub_url = (
        f"http://{c.JupyterHub.get('hub_ip', '127.0.0.1')}:{c.JupyterHub.get('hub_port', 8081)}"
    )
    command += [
        "--ip", c.JupyterHub.get("ip", "") or "127.0.0.1",
        "--port", str(c.JupyterHub.get("port", 8000)),
        "--api-ip", api.hostname or "127.0.0.1",
        "--api-port", str(api.port or 8001),
        "--error-target", f"{hub_url}{base_url}/hub/error",
        "--log-level", proxy.get("log_level", "info"),
    ]  # fmt: skip
    return command, {"CONFIGPROXY_AUTH_TOKEN": proxy.auth_token}
