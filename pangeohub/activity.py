"""A Jupyter Server extension: a kernel that is computing counts as activity.

Jupyter Server records activity when a kernel sends messages, so a cell that computes
quietly for an hour looks idle to the hub. This extension marks the server active while
any kernel is busy, through Jupyter Server's hook for extensions (a setting whose name
ends with ``_last_activity``), which jupyterhub-singleuser reports to the hub.
pangeohub's local spawner enables it through ``JUPYTER_CONFIG_PATH``.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from tornado.ioloop import PeriodicCallback

INTERVAL_ENV = "PANGEOHUB_BUSY_CHECK_SECONDS"
SETTING = "pangeohub_busy_kernels_last_activity"
CONFIG_DIR = os.path.join(os.path.dirname(__file__), "jupyter-config")


def _jupyter_server_extension_points():
    return [{"module": "pangeohub.activity"}]


def any_kernel_busy(kernel_manager) -> bool:
    """Whether any kernel of the server is executing."""
    for kernel_id in list(kernel_manager.list_kernel_ids()):
        kernel = kernel_manager.get_kernel(kernel_id)
        if getattr(kernel, "execution_state", None) == "busy":
            return True
    return False


def _load_jupyter_server_extension(serverapp):
    settings = serverapp.web_app.settings
    interval = float(os.environ.get(INTERVAL_ENV) or 30)

    def mark_busy_kernels():
        if any_kernel_busy(serverapp.kernel_manager):
            settings[SETTING] = datetime.now(UTC)

    PeriodicCallback(mark_busy_kernels, interval * 1000).start()
    serverapp.log.info("pangeohub: busy kernels count as activity (checked every %gs)", interval)
