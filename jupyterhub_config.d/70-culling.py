"""Culling: idle servers stop after 2 hours (never removed), so their disks stay."""

c = get_config()  # noqa: F821

c.CullingPolicy.timeout = 7200  # 2 hours without activity
c.CullingPolicy.every = 600  # checked every 10 minutes
