"""Servers: pangeohub's local spawner and named servers (pangeohub.configure(c) applies
their limit and name rule)."""

c = get_config()  # noqa: F821

c.JupyterHub.spawner_class = "pangeo-local"
c.JupyterHub.allow_named_servers = True
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
