"""Dask clusters as the user's account: dask-gateway-server's own ``LocalBackend``.

As root, pangeohub's gateway backend keeps its options, bounds and limits but runs each
cluster's scheduler and workers as the account of the cluster's user
(:class:`~pangeohub.isolation.Isolation`), each in its own space
(:mod:`~pangeohub.isolation.sandbox`: private ``/tmp``, own processes only) and in a
cgroup of its own under the person's (``<cgroup_parent>/<account>/_dask-<cluster>/``)
holding it to its ``worker_memory`` (or ``scheduler_memory``) and cores.

Everything the gateway writes as root is in a tree no person can change: each
cluster's working directory is ``<clusters_root>/<account>/<cluster>``, owned by root
and open (search and read, not write) to the account's group only; its TLS files and
log files are made there by root, through directory file descriptors, and the
processes get their log files as open descriptors. A person's code cannot swap any of
it for a link, and nobody else can list it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import stat
from pathlib import Path
from types import SimpleNamespace

from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.backends.local import LocalBackend, wait_is_shutdown

from ..gateway.backend import PangeoLocalBackend
from . import Isolation
from .accounts import AccountCollision
from .cgroups import ServerCgroup
from .sandbox import signal_sandbox

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def open_private_dir(name: str, dir_fd: int | None, gid: int, mode: int) -> int:
    """Make (or reuse) the directory ``name`` under ``dir_fd``, owned by root and group
    ``gid`` with ``mode``, never through a link; its descriptor."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    fd = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
    try:
        os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def new_file(name: str, dir_fd: int, gid: int, mode: int, data: bytes = b"") -> int:
    """A new file ``name`` in ``dir_fd`` (never an existing one, never a link), owned by
    root and group ``gid`` with ``mode``, holding ``data``; its (write) descriptor."""
    fd = os.open(name, NEW_FILE, 0o600, dir_fd=dir_fd)
    try:
        os.fchown(fd, 0, gid)
        os.fchmod(fd, mode)
        if data:
            os.write(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd


class PangeoIsolatedLocalBackend(PangeoLocalBackend):
    """:class:`PangeoLocalBackend` whose processes run as the user's own account."""

    classes = [*PangeoLocalBackend.classes, Isolation]  # its settings reach the gateway

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.isolation = Isolation(parent=self)

    def account(self, username: str) -> str:
        """The user's account, created if they never started a server."""
        name = self.isolation.account(username)
        self.isolation.ensure_account(name)
        return name

    async def start_cluster(self, user, cluster_options):
        """Refuse, with the reason, a user whose hub name cannot have an account."""
        try:
            self.account(user.name)
        except AccountCollision as error:
            raise PublicException(str(error)) from None
        return await super().start_cluster(user, cluster_options)

    def _entry(self, username: str) -> pwd.struct_passwd:
        return pwd.getpwnam(self.account(username))

    # --- the cluster's directory --------------------------------------------

    def setup_working_directory(self, cluster) -> str:
        """``<clusters_root>/<account>/<cluster>`` with ``.certs`` and ``logs``, all
        root's; the account's group may enter and read them, nobody may change them."""
        entry = self._entry(cluster.username)
        root = self.clusters_directory or self.isolation.clusters_root
        os.makedirs(root, mode=0o711, exist_ok=True)
        fds = [os.open(root, DIR_FLAGS)]
        try:
            info = os.fstat(fds[0])
            if info.st_uid != 0 or info.st_mode & 0o022:
                raise PermissionError(f"{root} must belong to root and be closed to others")
            os.fchmod(fds[0], 0o711)
            for name in (entry.pw_name, cluster.name):
                fds.append(open_private_dir(name, fds[-1], entry.pw_gid, 0o710))
            workdir = os.path.join(root, entry.pw_name, cluster.name)
            for name in (".certs", "logs"):
                os.close(open_private_dir(name, fds[-1], entry.pw_gid, 0o710))
            certs = os.open(".certs", DIR_FLAGS, dir_fd=fds[-1])
            try:
                cert, key = (os.path.basename(p) for p in self._get_tls_paths(workdir))
                for name, data in ((cert, cluster.tls_cert), (key, cluster.tls_key)):
                    os.close(new_file(name, certs, entry.pw_gid, 0o440, data))
            finally:
                os.close(certs)
        finally:
            for fd in fds:
                os.close(fd)
        self.log.debug("Working directory %s for cluster %s created", workdir, cluster.name)
        return workdir

    def set_file_permissions(self, paths, username):
        """Nothing to give: the working directory is root's, open to the account's group."""

    def cleanup_working_directory(self, workdir):
        """Remove the cluster's directory (root's own tree: nothing in it is a person's)."""
        try:
            shutil.rmtree(workdir)  # descriptor-based: never follows a link
        except FileNotFoundError:
            pass
        except OSError as error:
            self.log.warning("Failed to remove working directory %s (%s)", workdir, error)

    # --- processes ------------------------------------------------------------

    def process_cgroup(self, cluster, name: str | None = None) -> ServerCgroup | None:
        """The cgroup of one of ``cluster``'s processes (``name``), or of the cluster."""
        version = self.isolation.cgroups()
        if version is None:
            return None
        account = self.isolation.account(cluster.username)
        relative = f"{self.isolation.cgroup_parent}/{account}/_dask-{cluster.name}"
        return ServerCgroup(f"{relative}/{name}" if name else relative, version)

    def make_preexec_fn(self, cluster):
        as_account = SimpleNamespace(username=self.account(cluster.username), state=cluster.state)
        return LocalBackend.make_preexec_fn(self, as_account)

    def own_server_home(self, username: str, env: dict) -> list[str]:
        """The server home the workers' ``HOME`` names (the hub's worker environment:
        ``pip install --user`` packages), kept in their sandbox only when it is one of
        this person's own server homes, ``<home_root>/<account>/<server>``: root-owned
        parents, so nothing in the path is the person's to swap."""
        home = env.get("HOME", "")
        own = Path(self.isolation.home_root) / self.account(username)
        path = Path(home)
        if not path.is_absolute() or path.parent != own or path.name in ("", ".", ".."):
            return []
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                return []
        except OSError:
            return []
        return [str(path)]

    async def start_process(self, cluster, cmd, env, name):
        """Start ``cmd`` as the account, in its sandbox and cgroup, its output going to a
        log file root made in the cluster's ``logs`` directory."""
        entry = self._entry(cluster.username)
        workdir = cluster.state["workdir"]
        scheduler = name == "scheduler"
        memory = cluster.config["scheduler_memory" if scheduler else "worker_memory"]
        cores = cluster.config["scheduler_cores" if scheduler else "worker_cores"]
        cgroup = self.process_cgroup(cluster, name)
        if cgroup is not None:
            cgroup.create(int(memory), float(cores))
        keep = [workdir, *self.own_server_home(cluster.username, env)]
        keep += [str(d) for d in cgroup.directories] if cgroup is not None else []
        sandbox = self.isolation.sandbox_for(entry.pw_uid, entry.pw_gid, keep=keep)
        if sandbox is None:
            preexec = self.make_preexec_fn(cluster)
        else:
            cmd = sandbox.wrap(cmd)

            def preexec():
                os.chdir(workdir)

        def join_then(then=preexec):
            if cgroup is not None:
                cgroup.join()
            then()

        logs = os.open(self.get_logs_directory(workdir), DIR_FLAGS)
        try:
            fd = new_file(name + ".log", logs, entry.pw_gid, 0o640)
        finally:
            os.close(logs)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                preexec_fn=join_then,
                start_new_session=True,
                env=env,
                stdout=fd,
                stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            os.close(fd)
        return proc.pid

    async def stop_process(self, pid):
        """Stop the command in the sandbox (SIGINT, SIGTERM, then the whole sandbox)."""
        for sig, timeout in (
            (signal.SIGINT, self.sigint_timeout),
            (signal.SIGTERM, self.sigterm_timeout),
            (signal.SIGKILL, self.sigkill_timeout),
        ):
            if not signal_sandbox(pid, sig):
                return
            if await wait_is_shutdown(pid, timeout):
                return
        self.log.warning("Failed to stop process %d", pid)

    async def do_stop_worker(self, worker):
        await super().do_stop_worker(worker)
        self._remove_cgroup(worker.cluster, "worker-" + worker.name)

    async def do_stop_cluster(self, cluster):
        await super().do_stop_cluster(cluster)
        self._remove_cgroup(cluster, None)

    def _remove_cgroup(self, cluster, name):
        cgroup = self.process_cgroup(cluster, name)
        if cgroup is None:
            return
        if name is None:  # the cluster's: its processes' first
            for directory in cgroup.directories:
                with contextlib.suppress(OSError):
                    for child in directory.iterdir():
                        if child.is_dir() and not stat.S_ISLNK(child.lstat().st_mode):
                            ServerCgroup(f"{cgroup.relative}/{child.name}", cgroup.version).remove()
        cgroup.remove()


def local_backend_class(config=None) -> str:
    """The gateway's local backend: isolated as root, else the hub's own account."""
    if Isolation(config=config).active:
        return "pangeohub.isolation.gateway.PangeoIsolatedLocalBackend"
    return "pangeohub.gateway.backend.PangeoLocalBackend"
