"""A disk per server with a hard size: a sparse ext4 image, loop-mounted as its home.

The image lives in the hub's state directory (only root reaches it); the mount point
lives under a root-owned tree the server's account can pass through but not change,
so nobody can swap a directory for a link to somewhere else. Every step is
idempotent: an image or a mount left by an earlier run (or a hub crash) is reused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

RELEASE_SECONDS = 10  # how long a disk's last user may take to let it go


class DiskError(OSError):
    """A disk could not be made or mounted (the message says which and why)."""


def loop_devices_usable() -> str | None:
    """None if this machine can loop-mount images, else the reason it cannot."""
    if os.geteuid() != 0:
        return "the hub is not running as root"
    if not Path("/dev/loop-control").exists():
        return "there is no /dev/loop-control (no loop devices)"
    for tool in ("mkfs.ext4", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def mounted_at(mountpoint: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    """Whether a file system is mounted exactly at ``mountpoint``."""
    target = os.fsencode(str(mountpoint))
    with contextlib.suppress(OSError):
        for line in mountinfo.read_bytes().splitlines():
            fields = line.split(b" ")
            if len(fields) > 4 and _unescape(fields[4]) == target:
                return True
    return False


def _unescape(path: bytes) -> bytes:
    for code in (b"\\040", b"\\011", b"\\012", b"\\134"):
        path = path.replace(code, bytes([int(code[1:], 8)]))
    return path


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DiskError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")


def private_directory(path: Path, mode: int = 0o711) -> None:
    """Make ``path`` (and missing parents) a root-owned directory that is not a link."""
    path.mkdir(mode=mode, parents=True, exist_ok=True)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise DiskError(f"{path} is not a directory; refusing to use it")
    if info.st_uid != 0:
        os.chown(path, 0, 0, follow_symlinks=False)
    os.chmod(path, mode)


def shared_mount(path: Path) -> bool:
    """Make ``path`` a mount point of its own with shared propagation, so that what is
    mounted or unmounted under it later is mounted or unmounted in every sandbox too
    (each has a copy of the machine's mounts); idempotent. False (nothing done) when
    something is already mounted below a ``path`` that is not yet a mount point, as
    servers left running by an earlier version would be: binding over them would hide
    them."""
    if not mounted_at(path):
        if _mounts_below(path):
            return False
        _run(["mount", "--bind", str(path), str(path)])
    _run(["mount", "--make-shared", str(path)])
    return True


def _mounts_below(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> bool:
    prefix = os.fsencode(str(path).rstrip("/") + "/")
    with contextlib.suppress(OSError):
        for line in mountinfo.read_bytes().splitlines():
            fields = line.split(b" ")
            if len(fields) > 4 and _unescape(fields[4]).startswith(prefix):
                return True
    return False


class ServerDisk:
    """One server's image (``image``) mounted at ``mountpoint``, owned by ``uid``."""

    def __init__(self, image: Path, mountpoint: Path, size: int, uid: int, gid: int):
        self.image = Path(image)
        self.mountpoint = Path(mountpoint)
        self.size = int(size)
        self.uid = uid
        self.gid = gid

    @property
    def mounted(self) -> bool:
        return mounted_at(self.mountpoint)

    def create(self) -> bool:
        """Make the sparse image and its file system if there is none; True if made."""
        if self.image.exists():
            return False
        self.image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.image.with_name(f".{self.image.name}.new")
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, self.size)
        finally:
            os.close(fd)
        _run(
            [
                "mkfs.ext4", "-q", "-F", "-m", "0", "-L", "pangeohub",
                "-E", f"lazy_itable_init=1,lazy_journal_init=1,root_owner={self.uid}:{self.gid}",
                str(partial),
            ]
        )  # fmt: skip
        os.replace(partial, self.image)
        return True

    def loop_devices(self) -> list[str]:
        """The loop devices the image is attached to (a mount here or anywhere else)."""
        found = subprocess.run(
            ["losetup", "--noheadings", "--output", "NAME", "--associated", str(self.image)],
            capture_output=True,
            text=True,
            check=False,
        )
        return found.stdout.split()

    def wait_released(self, timeout: float = RELEASE_SECONDS) -> bool:
        """Wait until no loop device holds the image (the last mount of it, in any
        mount namespace, is gone); False if one still does after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.loop_devices():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def mount(self) -> None:
        """Mount the image at the mount point (a root-owned, link-free path); idempotent.

        Refuses while the image is still attached elsewhere (a stopped server's file
        system not yet let go): one ext4 image mounted twice would be corrupted."""
        private_directory(self.mountpoint.parent)
        if not self.mounted:
            if not self.wait_released():
                raise DiskError(
                    f"{self.image.name} is still in use by a stopped server; try again shortly"
                )
            private_directory(self.mountpoint, 0o700)
            # discard: what a person deletes is given back to the machine's disk (the
            # image stays sparse), not kept by the image until it is removed
            options = "loop,nosuid,nodev,discard"
            _run(["mount", "-o", options, str(self.image), str(self.mountpoint)])
        # The file system's root belongs to the account, and to nobody else.
        os.chown(self.mountpoint, self.uid, self.gid, follow_symlinks=False)
        os.chmod(self.mountpoint, 0o700)
        # mkfs's lost+found, removed inside the person's file system by descriptor
        fd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            with contextlib.suppress(OSError):
                os.rmdir("lost+found", dir_fd=fd)
        finally:
            os.close(fd)

    def unmount(self) -> None:
        """Unmount (lazily if something still holds it open), then wait (bounded) until
        the file system is let go everywhere; idempotent."""
        if not self.mounted:
            return
        try:
            _run(["umount", str(self.mountpoint)])
        except DiskError:
            _run(["umount", "--lazy", str(self.mountpoint)])
        self.wait_released()

    def ensure(self) -> bool:
        """Create if needed and mount; True if the image was new."""
        made = self.create()
        self.mount()
        return made

    def delete(self) -> None:
        """Unmount, then delete the image and the empty mount point."""
        self.unmount()
        with contextlib.suppress(FileNotFoundError):
            self.image.unlink()
        with contextlib.suppress(OSError):
            if not self.mountpoint.is_symlink():
                self.mountpoint.rmdir()
