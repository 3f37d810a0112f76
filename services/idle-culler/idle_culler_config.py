"""jupyterhub-idle-culler settings beyond c.CullingPolicy (loaded by the culler service).

The hub starts the culler as ``python -m pangeohub.culling`` with its timeout, interval
and maximum age from ``c.CullingPolicy``; anything else of ``c.IdleCuller`` goes here.
Never set remove_named_servers or cull_users: they delete disks, and the hub refuses
to start with them.
"""

c = get_config()  # noqa: F821
