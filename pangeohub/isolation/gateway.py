"""Dask clusters as the user's account: dask-gateway-server's own ``LocalBackend``.

As root, pangeohub's gateway backend keeps its options, bounds and limits but runs each
cluster's scheduler and workers through ``LocalBackend``'s set-uid start (not
``UnsafeLocalBackend``'s), as the account of the cluster's user
(:class:`~pangeohub.isolation.Isolation`), and gives that account the cluster's working
directory and TLS files.
"""

from __future__ import annotations

from types import SimpleNamespace

from dask_gateway_server.backends.local import LocalBackend

from ..gateway.backend import PangeoLocalBackend
from . import Isolation
from .accounts import ensure_account


class PangeoIsolatedLocalBackend(PangeoLocalBackend):
    """:class:`PangeoLocalBackend` whose processes run as the user's own account."""

    def account(self, username: str) -> str:
        """The user's account, created if they never started a server."""
        isolation = Isolation(parent=self)
        name = isolation.account(username)
        ensure_account(name, f"{isolation.home_root}/{name}")
        return name

    def set_file_permissions(self, paths, username):
        LocalBackend.set_file_permissions(self, paths, self.account(username))

    def make_preexec_fn(self, cluster):
        as_account = SimpleNamespace(username=self.account(cluster.username), state=cluster.state)
        return LocalBackend.make_preexec_fn(self, as_account)


def local_backend_class(config=None) -> str:
    """The gateway's local backend: isolated as root, else the hub's own account."""
    if Isolation(config=config).active:
        return "pangeohub.isolation.gateway.PangeoIsolatedLocalBackend"
    return "pangeohub.gateway.backend.PangeoLocalBackend"
