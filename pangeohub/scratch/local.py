"""Local scratch: a directory per user on this machine (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import threading
from pathlib import Path

from jupyterhub.traitlets import ByteSpecification
from traitlets import Unicode, default

from ..isolation import Isolation
from ..isolation.accounts import AccountCollision
from ..isolation.disks import (
    DiskError,
    ServerDisk,
    private_directory,
    shared_mount,
)
from ..state import StateDirectory, state_path
from .base import BackendUnavailable, Issued, ScratchBackend, ScratchConfigError
from .names import UnsafeName, user_segment

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# One person's scratch is made once even when their server and workers ask together.
_making = threading.Lock()


def sweep(root: Path, max_age_seconds: float, now: float) -> int:
    """Delete files under ``root`` last modified more than ``max_age_seconds`` ago.

    Runs as root over trees people write, so it never acts by path: ``root`` is opened
    without following a link, each user's directory through it, and everything below
    with :func:`os.fwalk` (directory descriptors, never following a link), removing
    names relative to the descriptor of the directory that holds them. A directory a
    person swaps for a link during the sweep is at most removed as a link; its target
    is never read or touched. Old empty directories below a user's directory go too;
    the users' own directories are kept. Returns the number of files removed.
    """
    removed = 0
    cutoff = now - max_age_seconds
    try:
        top = os.open(root, DIR_FLAGS)
    except OSError:
        return 0
    try:
        for entry in os.scandir(top):
            if entry.is_dir(follow_symlinks=False):
                removed += _sweep_user(entry.name, top, cutoff)
    finally:
        os.close(top)
    return removed


def _sweep_user(name: str, root_fd: int, cutoff: float) -> int:
    removed = 0
    walk = os.fwalk(name, topdown=False, follow_symlinks=False, dir_fd=root_fd)
    for _path, dirnames, filenames, dir_fd in walk:
        for entry in filenames + dirnames:
            with contextlib.suppress(FileNotFoundError):
                info = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
                if info.st_mtime >= cutoff:
                    continue
                if stat.S_ISDIR(info.st_mode):
                    with contextlib.suppress(OSError):  # not empty: kept
                        os.rmdir(entry, dir_fd=dir_fd)
                else:  # a file or a link (removed as a link)
                    os.unlink(entry, dir_fd=dir_fd)
                    removed += 1
    return removed


def _holds_files(path: Path) -> bool:
    """Whether the directory ``path`` exists with something in it (never followed)."""
    try:
        fd = os.open(path, DIR_FLAGS)
    except FileNotFoundError:
        return False
    try:
        return any(True for _ in os.scandir(fd))
    finally:
        os.close(fd)


class LocalScratchBackend(ScratchBackend):
    """A directory per user under ``root``; no credentials needed on one machine."""

    name = "local"
    scheme = "file"
    classes = [Isolation]  # what it configures besides itself (the hub passes it on)

    root = Unicode(help="Directory holding one scratch directory per user.").tag(config=True)

    @default("root")
    def _default_root(self):
        isolation = Isolation(parent=self)
        if isolation.active:  # beside the homes: the state directory is root's alone
            return str(Path(isolation.home_root).parent / "scratch")
        return str(state_path() / "scratch")

    size_limit = ByteSpecification(
        "10G",
        help="""As root, each person's scratch is a disk image of this size (sparse: it
        takes only what is written), so one person cannot fill the machine's disk:
        writing past it fails with "No space left on device". 0: a plain directory,
        without a limit (also where the machine has no loop devices). A person's
        existing scratch directory that already holds files stays a plain directory.""",
    ).tag(config=True)

    disk_root = Unicode(
        help="Directory of the scratch disk images (default: <state dir>/scratch-disks).",
    ).tag(config=True)

    @default("disk_root")
    def _default_disk_root(self):
        return str(StateDirectory.from_env().path / "scratch-disks")

    def check_config(self) -> None:
        if not os.path.isabs(self.root):
            raise ScratchConfigError(
                f"c.LocalScratchBackend.root must be an absolute path, not {self.root!r}."
            )

    def path(self, user: str) -> Path:
        return Path(self.root) / user_segment(user)

    def url(self, user: str) -> str:
        return f"file://{self.path(user)}"

    async def start(self) -> None:
        self.check_config()
        try:
            if Isolation(parent=self).active:
                private_directory(Path(self.root))  # each user's directory is theirs alone
                # people's scratch disks, mounted later, appear in running servers too
                if not shared_mount(Path(self.root)):
                    self.log.warning(
                        "%s holds mounts from before it was shared: restart the servers "
                        "to see scratch disks made since",
                        self.root,
                    )
            else:
                Path(self.root).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise ScratchConfigError(
                f"Cannot create the scratch directory {self.root} ({error.strerror})."
            ) from None

    def prepare(self, user: str) -> None:
        """``user``'s directory made theirs before their server starts: as root, their
        account's (a disk of ``size_limit`` where there is one) in the root-owned scratch
        root, never through a link."""
        path = self.path(user)
        isolation = Isolation(parent=self)
        if not isolation.active:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            return
        private_directory(Path(self.root))
        name = isolation.account(user)
        account = isolation.ensure_account(name)
        self._make_own(path, account.pw_uid, account.pw_gid)

    def client_environment(self, user: str, files: dict[str, str]) -> dict[str, str]:
        """fsspec makes a key's directories as it writes (as a bucket needs none): zarr's
        stores write ``<scratch>/data.zarr/zarr.json`` without making ``data.zarr`` first."""
        return {"FSSPEC_FILE_AUTO_MKDIR": "true"}

    async def credentials(self, user: str) -> Issued:
        try:
            await asyncio.to_thread(self.prepare, user)
        except AccountCollision as error:
            raise UnsafeName(str(error)) from None
        except OSError as error:
            self.log.error("Cannot create scratch directory for %s: %s", user, error.strerror)
            raise BackendUnavailable("The scratch directory could not be created.") from None
        path = self.path(user)
        return Issued(url=self.url(user), credentials={"path": str(path)}, expiration=None)

    def _make_own(self, path: Path, uid: int, gid: int) -> None:
        """``path`` (in the root-owned ``root``): the person's disk of ``size_limit``
        mounted there, or a plain directory of theirs."""
        with _making:
            self._make_own_now(path, uid, gid)

    def _make_own_now(self, path: Path, uid: int, gid: int) -> None:
        disk = self.disk(path, uid, gid)
        if disk is not None and (disk.mounted or not _holds_files(path)):
            try:
                disk.ensure()
                return
            except DiskError as error:
                self.log.warning("No size limit for %s's scratch: %s", path.name, error)
        elif disk is not None:
            self.log.warning(
                "%s already holds files: it stays a plain directory without a size limit",
                path,
            )
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        fd = os.open(path, DIR_FLAGS)  # never through a link
        try:
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)

    def disk(self, path: Path, uid: int, gid: int) -> ServerDisk | None:
        """The scratch disk of ``path``, when there is one to give."""
        if not self.size_limit or Isolation(parent=self).disk_problem() is not None:
            return None
        image = Path(self.disk_root) / f"{path.name}.img"
        return ServerDisk(image, path, int(self.size_limit), uid, gid)

    async def ensure_expiry(self) -> None:
        """Remove files older than ``expiry_days`` (this backend has no lifecycle rules)."""
        root = Path(self.root)
        if not root.is_dir():
            return
        removed = await asyncio.to_thread(sweep, root, self.expiry_days * 86400, self.now())
        self.log.info(
            "Scratch sweep removed %d file(s) older than %d days", removed, self.expiry_days
        )
