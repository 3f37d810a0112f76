"""Culling: idle servers stop (never removed), so their disks stay.

The culler service itself is registered once the whole configuration is loaded
(pangeohub.startup), so c.CullingPolicy settings in an override file take effect.
"""

from pathlib import Path

c = get_config()  # noqa: F821

here = Path(__file__).resolve().parent.parent
c.CullingPolicy.timeout = 7200  # 2 hours without activity
c.CullingPolicy.every = 600  # checked every 10 minutes
c.CullingPolicy.config_file = str(here / "services" / "idle-culler" / "idle_culler_config.py")
