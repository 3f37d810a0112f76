"""Each one-machine server's home: its directory or disk image (kept when it stops,
renamed with it, deleted only with it), its cgroup and the shared data linked into it.

As root these are root's operations in root-owned trees (docs/root-boundary.md): made
and removed without following a link.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
from pathlib import Path

from jupyterhub.slugs import safe_slug
from traitlets.config import Configurable

from ..isolation.accounts import AccountCollision, lookup
from ..isolation.cgroups import ServerCgroup
from ..isolation.disks import ServerDisk, mounted_at, private_directory, shared_mount
from ..lab.shared import SharedData
from ..parts import hub_part
from ..policy import PolicyError
from ..refusal import refusal

DEFAULT_SERVER_DIR = "_default"


def remove_tree(root: Path, parts: list[str], log) -> None:
    """Delete ``root/<parts...>`` without following a link anywhere on the way.

    A link where a directory should be (a server's directory replaced by a link to
    another's) is removed as a link; its target is never touched.
    """
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            if i == len(parts) - 1:
                log.warning("%s is a link, not a server directory: removing only the link", path)
                path.unlink()
            else:
                log.error("Refusing to delete under %s: it is a link", path)
            return
    shutil.rmtree(path)  # rmtree never follows links below the top


class ServerHomes(Configurable):
    """Homes, disks and cgroups of :class:`.local.PangeoLocalSpawner`'s servers (it
    gives ``isolation``, ``isolated``, ``account``, ``server_root`` and ``profile``)."""

    @property
    def server_dir_name(self) -> str:
        return safe_slug(self.name) if self.name else DEFAULT_SERVER_DIR

    @property
    def server_directory(self) -> Path:
        """This server's home: <home_root>/<account>/<server> as root, else
        <server_root>/<user>/<server>."""
        return self.directory_for(self.name)

    def directory_for(self, server_name: str) -> Path:
        """The home of this user's server ``server_name``."""
        name = safe_slug(server_name) if server_name else DEFAULT_SERVER_DIR
        if self.isolated:
            return Path(self.isolation.home_root) / self.account / name
        return Path(self.server_root) / safe_slug(self.user.name) / name

    def image_for(self, server_name: str) -> Path:
        """The disk image of this user's server ``server_name`` (isolated servers)."""
        name = safe_slug(server_name) if server_name else DEFAULT_SERVER_DIR
        return Path(self.isolation.disk_root) / self.account / f"{name}.img"

    @property
    def disk(self) -> ServerDisk | None:
        """This server's disk image, when it gets one (root, loop devices)."""
        if not self.isolated or self.isolation.disk_problem() is not None:
            return None
        account = lookup(self.account)
        size = self.profile.disk_size if self.profile is not None else 0
        return ServerDisk(
            self.image_for(self.name),
            self.server_directory,
            size,
            account.pw_uid if account else 0,
            account.pw_gid if account else 0,
        )

    @property
    def cgroup(self) -> ServerCgroup | None:
        """This server's cgroup, when the machine has one to give (root)."""
        version = self.isolation.cgroups()
        if version is None:
            return None
        relative = f"{self.isolation.cgroup_parent}/{self.account}/{self.server_dir_name}"
        return ServerCgroup(relative, version)

    async def move_disk(self, old_name: str, new_name: str) -> None:
        """A renamed server keeps its directory: it moves to the new name (the server
        is stopped; JupyterHub refuses to rename a running one)."""
        old, new = self.directory_for(old_name), self.directory_for(new_name)
        images = (self.image_for(old_name), self.image_for(new_name)) if self.isolated else None
        if new.exists() or (images and images[1].exists()):
            raise refusal(
                PolicyError(
                    409,
                    f"A directory for a server named {new_name!r} is still on this hub's "
                    "disk, so the rename would mix two servers' files. Choose another name, "
                    "or ask a hub admin to remove the old directory.",
                )
            )
        if mounted_at(old):
            raise refusal(
                PolicyError(409, "This server's disk is still in use; stop the server first.")
            )
        if images and images[0].exists():
            images[0].rename(images[1])
        if old.exists():
            old.rename(new)
            self.log.info("Moved %s's directory to %s", self._log_name, new)

    @property
    def shared_data(self) -> SharedData:
        return hub_part(SharedData, self)

    def link_shared_data(self, uid: int, gid: int) -> None:
        """The shared data directory, linked into the server's home (c.SharedData)."""
        shared = self.shared_data
        if shared.enabled:
            shared.link_into(self.server_directory, uid, gid)

    def prepare_home(self) -> bool:
        """Account, disk (or directory) and cgroup for this start; True if the disk is new."""
        if not self.isolated:
            self.server_directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.link_shared_data(os.getuid(), os.getgid())
            return False
        home = self.server_directory
        private_directory(Path(self.isolation.home_root))
        # unmounting a disk here unmounts it in every sandbox too (docs/root-boundary.md)
        if not shared_mount(Path(self.isolation.home_root)):
            self.log.warning(
                "%s is not a shared mount yet (servers of an earlier version are running): "
                "a stopped server's disk may stay in use until every server has restarted",
                self.isolation.home_root,
            )
        account = self.isolation.ensure_account(self.account)
        disk = self.disk
        made = False
        if disk is not None:
            made = disk.ensure()
        else:
            private_directory(home.parent)
            home.mkdir(mode=0o700, exist_ok=True)
            os.chown(home, account.pw_uid, account.pw_gid, follow_symlinks=False)
        self.link_shared_data(account.pw_uid, account.pw_gid)
        self.prepare_cgroup()
        return made

    def prepare_cgroup(self) -> None:
        """This server's cgroup, emptied of anything a crashed run left, holding the
        spawner's own limits (a ``pre_spawn_hook``'s changes included)."""
        cgroup = self.cgroup
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.create(**self.cgroup_limits())

    def cgroup_limits(self) -> dict:
        """The spawner's ``mem_limit``, ``cpu_limit`` and guarantees (at most the limits),
        as :meth:`ServerCgroup.create` takes them; None: no limit."""
        mem_limit, cpu_limit = self.mem_limit or None, self.cpu_limit or None
        return {
            "mem_limit": mem_limit,
            "cpu_limit": cpu_limit,
            "mem_guarantee": _at_most(self.mem_guarantee, mem_limit),
            "cpu_guarantee": _at_most(self.cpu_guarantee, cpu_limit),
        }

    def release_home(self) -> None:
        """After a stop: end what is left in the cgroup, remove it, unmount the disk."""
        if not self.isolated:
            return
        cgroup = self.cgroup
        if cgroup is not None:
            cgroup.remove()
        disk = self.disk
        if disk is not None:
            disk.unmount()

    async def delete_forever(self):
        """The server is deleted: its disk (or directory) goes with it, nothing else."""
        self.log.info("Deleting %s's disk", self._log_name)
        await asyncio.to_thread(self._delete_home)

    def _delete_home(self) -> None:
        if self.isolated:
            try:
                self.account  # noqa: B018
            except AccountCollision:
                return  # refused at its start: it never had a disk
            self.release_home()
            disk = self.disk
            if disk is not None:
                disk.delete()
            root, parts = Path(self.isolation.home_root), [self.account, self.server_dir_name]
        else:
            root, parts = Path(self.server_root), [safe_slug(self.user.name), self.server_dir_name]
        remove_tree(root, parts, self.log)


def _at_most(value, cap):
    """``value`` no higher than ``cap`` (either may be None: no bound)."""
    if value is None or cap is None:
        return value or None
    return min(value, cap)
