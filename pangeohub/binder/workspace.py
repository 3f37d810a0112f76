"""One build's directories under ``<env_root>/building/``, and their removal.

``building/<build>/`` is root's (0711); in it ``work/`` belongs to the build's account
(0700) and is all the build may write: where the hub can, a loop-mounted ext4 disk of
exactly ``max_size``, so the kernel stops a build that writes more. ``sealed/`` (root's,
0700) receives root's copy of the result (:mod:`.seal`), and ``disk.img`` is the disk's
image. Root makes the build's first directories through ``work``'s descriptor and
removes everything with descriptor-based deletion (:func:`shutil.rmtree` that never
follows links), after the build's processes are gone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from ..isolation.disks import DiskError, ServerDisk, loop_devices_usable, mounted_at
from .run import RunAs
from .seal import open_dir

# what the hub makes in a build's work directory for it: HOME, TMPDIR, uv's cache
BUILD_DIRS = ("home", "tmp", "cache")
FULL = 1 << 20  # less free than this on a build's disk: the disk is full


def disks_problem() -> str | None:
    """None if builds can get a disk of their own here, else why not."""
    return loop_devices_usable()


class BuildWorkspace:
    """The directories of one build of ``key``, for the account ``run_as``."""

    def __init__(self, building: Path, key: str, run_as: RunAs, disk_size: int | None):
        self.dir = building / f"{key}-{secrets.token_hex(4)}"
        self.work = self.dir / "work"
        self.sealed = self.dir / "sealed"
        self.run_as = run_as
        self.disk = None
        if disk_size:
            uid, gid = run_as.uid or 0, run_as.gid or 0
            self.disk = ServerDisk(self.dir / "disk.img", self.work, disk_size, uid, gid)

    def create(self) -> None:
        """The build's directory, its work directory (on its own disk if it has one)
        owned by the build's account, and in it ``home``, ``tmp`` and ``cache``."""
        self.dir.mkdir(mode=0o711)
        if self.disk is not None:
            try:
                self.disk.ensure()
            except DiskError:
                self.disk.delete()
                self.disk = None
        if self.disk is None:
            self.work.mkdir(mode=0o700)
            self.run_as.chown(self.work)
        fd = open_dir(self.work)
        try:
            for name in BUILD_DIRS:
                os.mkdir(name, 0o700, dir_fd=fd)
                if self.run_as.uid is not None:
                    os.chown(name, self.run_as.uid, self.run_as.gid, dir_fd=fd,
                             follow_symlinks=False)  # fmt: skip
        finally:
            os.close(fd)

    def full(self) -> bool:
        """Whether the build's own disk is full (never, without a disk of its own)."""
        if self.disk is None:
            return False
        with contextlib.suppress(OSError):
            fd = open_dir(self.work)
            try:
                info = os.fstatvfs(fd)
            finally:
                os.close(fd)
            return info.f_bavail * info.f_frsize < FULL
        return False

    def remove(self) -> None:
        """Detach the build's disk and delete everything (the build's processes must be
        gone: see :func:`~pangeohub.binder.accounts.kill_processes_of`)."""
        remove_build_dir(self.dir)


def remove_build_dir(path: Path) -> None:
    """Delete a build's directory, detaching its disk first if it is still mounted (lazily:
    what the build wrote is thrown away with the image, not written back first)."""
    work = path / "work"
    if mounted_at(work):
        subprocess.run(["umount", "--lazy", str(work)], capture_output=True, check=False)
    if mounted_at(work):  # still there: never delete through a mounted disk's files
        return
    if not shutil.rmtree.avoids_symlink_attacks:
        raise RuntimeError("this platform's rmtree could follow links; refusing to delete")
    shutil.rmtree(path, ignore_errors=True)


def remove_stale_builds(building: Path, active: set[str]) -> None:
    """Builds a stopped or killed hub left under ``building`` (not among ``active``)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(building):
            if entry.name not in active and entry.is_dir(follow_symlinks=False):
                remove_build_dir(Path(entry.path))
