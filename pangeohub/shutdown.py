"""The hub's shutdown order: servers (and with them their Dask clusters) before services.

JupyterHub's ``JupyterHub.cleanup`` (jupyterhub/app.py; the order dates from
jupyterhub#778, which added the services' clean-up in front of the servers') stops the
managed services first and the servers after. Each server's post-stop hook then finds the
Dask Gateway gone ("Dask Gateway did not answer /api/pangeohub/stop-server-clusters"), and
the clusters are left to the gateway's own hard stop. Meanwhile the hub's periodic service
check goes on running: a check that comes round after a service's record was removed
fails in ``check_services_health`` with an ``AttributeError`` traceback.

No setting changes either, hence this small patch around the two methods (not a copy of
them): on SIGINT or SIGTERM (Ctrl-C) the hub first stops its periodic checks, then, when
``c.JupyterHub.cleanup_servers`` is on (its default), stops every server at once, each
with its post-stop hooks, so the gateway is told to stop each server's clusters while it
is still up; then JupyterHub's own clean-up runs (services, proxy), finding no server left.
With ``cleanup_servers = False`` servers are left running, as JupyterHub leaves them.
"""

from __future__ import annotations

import asyncio
import functools

PATCHED = "_pangeohub_servers_first"


async def stop_servers(app) -> None:
    """Stop every active server of ``app`` at once, each with its post-stop hooks."""
    stops = [
        user.stop(name)
        for user in list(app.users.values())
        for name, spawner in list(user.spawners.items())
        if spawner.active
    ]
    if not stops:
        return
    app.log.info("Stopping %i single-user server(s) before the services...", len(stops))
    for result in await asyncio.gather(*stops, return_exceptions=True):
        if isinstance(result, Exception):
            app.log.error("Failed to stop a server (%s)", type(result).__name__)


def servers_first(cleanup):
    """``JupyterHub.cleanup``, preceded by stopping the periodic checks and the servers."""

    @functools.wraps(cleanup)
    async def cleanup_servers_first(self):
        self._pangeohub_stopping = True
        for callback in self._periodic_callbacks.values():
            callback.stop()
        if self.cleanup_servers:
            await stop_servers(self)
        await cleanup(self)

    setattr(cleanup_servers_first, PATCHED, True)
    return cleanup_servers_first


def quiet_while_stopping(check):
    """``JupyterHub.check_services_health``, skipped once the hub is stopping (a check
    already under way when the clean-up began)."""

    @functools.wraps(check)
    async def check_unless_stopping(self):
        if self._pangeohub_stopping:
            return
        try:
            await check(self)
        except AttributeError:  # a service's record removed by the clean-up meanwhile
            if not self._pangeohub_stopping:
                raise

    setattr(check_unless_stopping, PATCHED, True)
    return check_unless_stopping


def wire_shutdown(c=None) -> None:
    """Patch JupyterHub's clean-up once per process (part of :func:`pangeohub.configure`)."""
    from jupyterhub.app import JupyterHub

    # the patches' shared state on JupyterHub's application, which pangeohub does not
    # make: a class default where the patches are installed, True once a clean-up began
    JupyterHub._pangeohub_stopping = False
    if not getattr(JupyterHub.cleanup, PATCHED, False):
        JupyterHub.cleanup = servers_first(JupyterHub.cleanup)
    if not getattr(JupyterHub.check_services_health, PATCHED, False):
        JupyterHub.check_services_health = quiet_while_stopping(JupyterHub.check_services_health)
