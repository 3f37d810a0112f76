"""Dask clusters as the user's account: dask-gateway-server's own ``LocalBackend``.

As root, pangeohub's gateway backend keeps its options, bounds and limits but runs each
cluster's scheduler and workers through ``LocalBackend``'s set-uid start (not
``UnsafeLocalBackend``'s), as the account of the cluster's user
(:class:`~pangeohub.isolation.Isolation`), and gives that account the cluster's working
directory and TLS files.
"""

from __future__ import annotations

import os
import pwd
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
        """Give the account its cluster's working directory and TLS files, and nothing else.

        dask-gateway-server 2026.3's ``setup_working_directory`` adds the TLS files to its
        list with ``paths.extend(path)``, i.e. one character at a time, so the upstream
        method would chown "/" to the user. Only whole paths inside the working directory
        are changed here, and never through a link.
        """
        workdir = os.path.realpath(paths[0])
        owned = [workdir, *paths[1:3], *self._get_tls_paths(workdir)]
        account = pwd.getpwnam(self.account(username))
        for path in owned:
            real = os.path.realpath(path)
            if real != workdir and not real.startswith(workdir + os.sep):
                raise PermissionError(f"refusing to chown {path}: outside {workdir}")
            if os.path.lexists(path):
                os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)

    def make_preexec_fn(self, cluster):
        as_account = SimpleNamespace(username=self.account(cluster.username), state=cluster.state)
        return LocalBackend.make_preexec_fn(self, as_account)


def local_backend_class(config=None) -> str:
    """The gateway's local backend: isolated as root, else the hub's own account."""
    if Isolation(config=config).active:
        return "pangeohub.isolation.gateway.PangeoIsolatedLocalBackend"
    return "pangeohub.gateway.backend.PangeoLocalBackend"
