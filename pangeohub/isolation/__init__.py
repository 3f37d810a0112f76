"""Isolation on one machine: when the hub runs as root, each person gets an account.

:class:`Isolation` holds the settings. As root (a VM or server set up for a group)
every server runs as its user's own system account, in a cgroup holding the
profile's memory and CPU, with a loop-mounted disk of exactly the profile's size as
its home. Started by an ordinary account (a laptop), every server runs as that
account and the hub says so at start-up.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import stat
import sys
import sysconfig
from pathlib import Path

from jupyterhub.traitlets import ByteSpecification
from traitlets import Bool, Unicode, default
from traitlets.config import Config, LoggingConfigurable

from ..state import StateDirectory
from .accounts import AccountRegistry, account_name
from .cgroups import cgroup_version, hub_trees
from .disks import loop_devices_usable
from .sandbox import Sandbox, sandbox_problem


class Isolation(LoggingConfigurable):
    """How servers on one machine are kept apart (c.Isolation)."""

    enabled = Bool(
        True,
        help="""When the hub runs as root, run each person's servers as their own system
        account, with memory and CPU held by a cgroup and a disk of the profile's size.
        Off, or when the hub is not root, every server runs as the hub's own account and
        people are not isolated from each other.""",
    ).tag(config=True)

    account_prefix = Unicode(
        "jupyter-",
        help="""Prefix of the system account made for each hub user (``jupyter-grace``).
        Names useradd would refuse become their safe part plus a short hash.""",
    ).tag(config=True)

    home_root = Unicode(
        help="""Root-owned directory holding the servers' homes, one mount point each:
        ``<home_root>/<account>/<server>``. Default: /srv/pangeohub/<hub id>/homes, where
        the hub id is derived from the state directory, so two hubs never share one.""",
    ).tag(config=True)

    disk_root = Unicode(
        help="Directory of the servers' disk images (default: <state dir>/disks, root only).",
    ).tag(config=True)

    loop_disks = Bool(
        True,
        help="""Give each server a loop-mounted ext4 image of exactly its profile's
        ``disk_size`` as its home. Where the machine cannot (no loop devices) the hub says
        so at start-up and each server gets a plain directory (no size limit).""",
    ).tag(config=True)

    cgroup_parent = Unicode(
        help="""Cgroup (relative to each hierarchy's root) under which every server gets
        its own. Default: pangeohub/<hub id>.""",
    ).tag(config=True)

    sandbox = Bool(
        True,
        help="""Run each person's servers and Dask schedulers and workers in their own
        space (Debian's bubblewrap): a private ``/tmp`` and ``/dev/shm`` of bounded size,
        no view of other people's processes, homes or clusters, no way back to more
        privileges (set-id files do nothing), and kernels that speak over sockets in that
        private ``/tmp`` instead of TCP ports anyone on the machine could listen to. The
        hub refuses to start as root without bubblewrap unless this is off.""",
    ).tag(config=True)

    tmp_size = ByteSpecification(
        "1G",
        help="""Size of each server's (and each Dask scheduler's and worker's) private
        ``/tmp`` (and, apart, of its ``/var/tmp``). Writing past it fails with "No space
        left on device"; what is written counts against the server's memory limit.""",
    ).tag(config=True)

    shm_size = ByteSpecification(
        "512M",
        help="""Size of each server's (and Dask process's) private ``/dev/shm``; it
        counts against the memory limit like ``tmp_size``.""",
    ).tag(config=True)

    clusters_root = Unicode(
        help="""Root-owned directory of the Dask clusters' working directories
        (``<clusters_root>/<account>/<cluster>``, each closed to every other account).
        Default: /srv/pangeohub/<hub id>/clusters.""",
    ).tag(config=True)

    @default("clusters_root")
    def _default_clusters_root(self):
        return f"/srv/pangeohub/{self.hub_id}/clusters"

    @property
    def state(self) -> StateDirectory:
        return StateDirectory.from_env()

    @property
    def hub_id(self) -> str:
        """Short id of this hub, from its state directory's path."""
        return hashlib.sha256(str(self.state.path).encode()).hexdigest()[:8]

    @default("home_root")
    def _default_home_root(self):
        return f"/srv/pangeohub/{self.hub_id}/homes"

    @default("disk_root")
    def _default_disk_root(self):
        return str(self.state.path / "disks")

    @default("cgroup_parent")
    def _default_cgroup_parent(self):
        return f"pangeohub/{self.hub_id}"

    @property
    def active(self) -> bool:
        """Whether servers run as their own accounts (enabled and running as root)."""
        return self.enabled and os.geteuid() == 0

    @property
    def sandboxed(self) -> bool:
        """Whether people's processes run in their own space (isolated, sandbox on)."""
        return self.active and bool(self.sandbox)

    def account(self, username: str) -> str:
        """The system account of hub user ``username``: recorded in the hub's state the
        first time (one account per hub name and one hub name per account); a name whose
        account is another's raises :class:`~.accounts.AccountCollision`."""
        name = account_name(self.account_prefix, username)
        if not self.active:
            return name
        return self.registry.claim(username, name)

    def ensure_account(self, name: str) -> pwd.struct_passwd:
        """The account ``name`` (from :meth:`account`), made if missing, with the uid and
        gid recorded for it; :class:`~.accounts.AccountIdConflict` if it cannot have them."""
        return self.registry.ensure(name, f"{self.home_root}/{name}")

    @property
    def registry(self) -> AccountRegistry:
        """Which account is whose, and their ids: a SQLite file of its own in the state
        directory (not the hub database, which may be PostgreSQL)."""
        return AccountRegistry.at(self.state.path / "accounts.db")

    def sandbox_for(self, uid: int, gid: int, groups=(), keep=(), read_only=()) -> Sandbox | None:
        """The sandbox a person's process runs in (None: ``sandbox`` is off);
        ``read_only``: what it reads from ``/tmp`` and the like (see :class:`Sandbox`)."""
        if not self.sandboxed:
            return None
        # every hub's cgroups on the machine (their top), the process's own bound back
        hide = (
            self.home_root,
            self.clusters_root,
            *hub_trees(self.cgroup_parent.strip("/").split("/")[0]),
        )
        return Sandbox(
            uid,
            gid,
            tuple(groups),
            int(self.tmp_size),
            int(self.shm_size),
            hide=hide,
            keep=tuple(str(k) for k in keep),
            read_only=tuple(str(r) for r in read_only),
        )

    def sandbox_problem(self) -> str | None:
        """None if people's processes get their own space, else why not."""
        if not self.sandbox:
            return "c.Isolation.sandbox is off"
        return sandbox_problem()

    def disk_problem(self) -> str | None:
        """None if servers get loop-mounted disks, else why they get directories."""
        if not self.loop_disks:
            return "c.Isolation.loop_disks is off"
        return loop_devices_usable()

    def cgroups(self) -> int | None:
        return cgroup_version() if self.active else None

    def summary(self) -> str:
        """The one line the hub logs at start-up about what is isolated and enforced."""
        if not self.active:
            why = "is not running as root" if self.enabled else "has c.Isolation.enabled off"
            return (
                f"pangeohub: the hub {why}: every server runs as this account "
                f"({_whoami()}); people are NOT isolated from each other and memory, CPU "
                "and disk limits are not enforced. Run the hub as root for isolation."
            )
        version = self.cgroups()
        limits = (
            f"memory and CPU held by cgroup v{version}"
            if version
            else ("memory and CPU NOT enforced (no cgroup with memory and cpu controllers)")
        )
        problem = self.disk_problem()
        disks = (
            "each server's disk is an image of its profile's size"
            if problem is None
            else f"each server's disk is a plain directory without a size limit ({problem})"
        )
        problem = self.sandbox_problem()
        space = (
            "each in its own space (private /tmp, own processes only)"
            if problem is None
            else f"sharing /tmp and the process list ({problem})"
        )
        return (
            f"pangeohub: each person's servers run as their own account "
            f"({self.account_prefix}<name>), {space}; {limits}; {disks}."
        )


def blocked_for_others(path: str | os.PathLike) -> str | None:
    """The first directory on ``path``'s way another account cannot pass, if any."""
    real = Path(path).resolve()
    for part in [*reversed(real.parents), real]:
        try:
            mode = part.stat().st_mode
        except OSError:
            return str(part)
        if part.is_dir() and not mode & stat.S_IXOTH:
            return str(part)
        if part == real and not part.is_dir() and not mode & stat.S_IROTH:
            return str(part)
    return None


def check_servers_can_run(executable: str = sys.executable) -> None:
    """Refuse to isolate when people's accounts cannot run the servers' Python."""
    for path in (executable, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]):
        blocked = blocked_for_others(path)
        if blocked:
            raise ValueError(
                f"servers would run as people's own accounts, but they cannot reach {path} "
                f"({blocked} is closed to other accounts). Install the hub's environment "
                "with a Python every account can run (for example `/usr/bin/python3 -m venv`; "
                "`make setup` does this as root), or set c.Isolation.enabled = False."
            )


def check_sandbox(isolation: Isolation) -> None:
    """Refuse to isolate without bubblewrap, unless the admin turned the sandbox off."""
    if isolation.sandbox and (problem := sandbox_problem()) is not None:
        raise ValueError(
            f"each person's processes run in their own space, but {problem}. Install it "
            "(`apt-get install bubblewrap`), or set c.Isolation.sandbox = False to let "
            "people share /tmp and see each other's processes."
        )


def _whoami() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def announce_isolation(config: Config) -> None:
    """Check that isolation can work here, then log in one line what is isolated."""
    isolation = Isolation(config=config)
    if isolation.active:
        check_servers_can_run()
        check_sandbox(isolation)
        if config.JupyterHub.get("internal_ssl"):
            # JupyterHub's LocalProcessSpawner.move_certs copies each server's certificate
            # and key into the person's home as root, by path: a link there sends them on.
            raise ValueError(
                "c.JupyterHub.internal_ssl is on, but as root JupyterHub would copy each "
                "server's certificate into the person's home by path (a tree they can "
                "change); servers reach the hub on loopback, so leave internal_ssl off and "
                "serve people over HTTPS with c.HTTPS (docs/operate/https.md)."
            )
    logging.getLogger("JupyterHub").warning("%s", isolation.summary())


__all__ = ["Isolation", "announce_isolation"]
