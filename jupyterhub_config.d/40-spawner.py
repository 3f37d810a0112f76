"""Servers: pangeohub's local spawner, named servers, the limit and name rule."""

from pangeohub.servers import NamedServerGate

c = get_config()  # noqa: F821

c.JupyterHub.spawner_class = "pangeo-local"
c.JupyterHub.allow_named_servers = True
# Named-server limit and name rule, applied to the target user before a server exists.
c.JupyterHub.named_server_limit_per_user = NamedServerGate()
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
