"""pangeohub's own routes on the hub, and the deprecation line JupyterHub prints for them.

Launch links (``/hub/v2/...``), the Dask workers' token route and fancy-profiles' assets
are routes of the hub itself, registered with ``c.JupyterHub.extra_handlers``: the first
two need the hub's session, templates and database, which a service has not, and
fancy-profiles documents that setting for its assets. JupyterHub keeps the setting
(jupyterhub#4236 deprecated it "with no plans to remove the feature") and logs
"JupyterHub.extra_handlers is deprecated" at every start: advice for an admin's own
in-process handlers. That line is kept whenever the admin registers one; when every
handler is pangeohub's own, it is not shown.
"""

from __future__ import annotations

import logging

from traitlets.config import Config

from .hubconfig import config_list

DEPRECATION = "JupyterHub.extra_handlers is deprecated"


def is_pangeohubs(handler: tuple) -> bool:
    """Whether a ``(route, class, ...)`` entry is one pangeohub registers."""
    cls = handler[1] if len(handler) > 1 else None
    if getattr(cls, "__module__", "").startswith("pangeohub."):
        return True
    try:
        import jupyterhub_fancy_profiles
    except ImportError:
        return False
    return tuple(handler) == tuple(jupyterhub_fancy_profiles.STATIC_HANDLER_TUPLE)


class OwnHandlersOnly(logging.Filter):
    """Drops JupyterHub's deprecation line (set when every handler is pangeohub's)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(DEPRECATION)


def wire_quiet_handlers(c: Config) -> None:
    """Show JupyterHub's deprecation line only for the admin's own handlers (part of
    :func:`pangeohub.configure`, after every part has added its routes)."""
    log = logging.getLogger("JupyterHub")  # the hub application's logger
    for existing in [f for f in log.filters if isinstance(f, OwnHandlersOnly)]:
        log.removeFilter(existing)
    handlers = config_list(c, "extra_handlers")
    if handlers and all(is_pangeohubs(h) for h in handlers):
        log.addFilter(OwnHandlersOnly())
