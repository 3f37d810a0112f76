"""Copying trees a person can write, as root, without following their links.

A person controls every path inside their scratch directory (and members of the shared
data's writer group inside it): any directory can become a link at any moment. Archiving
reads through directory file descriptors (``os.fwalk``, ``dir_fd=``, ``O_NOFOLLOW``) and
never opens a path that leaves the tree; links are archived as links. Extracting writes
into a fresh root-only directory, one component at a time with ``O_NOFOLLOW``, so an
archived link is never written through, and drops set-id bits.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from pathlib import Path

_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def archive_tree(
    root: Path,
    tar: tarfile.TarFile,
    arcname: str,
    owner_only: bool = False,
    leave_out: frozenset[str] = frozenset(),
) -> int:
    """Add the tree at ``root`` to ``tar`` under ``arcname``; the number of entries
    skipped. With ``owner_only`` each top-level directory is one person's: entries inside
    it that another account owns (a hard link to someone else's file) are skipped.
    Top-level names in ``leave_out`` are not archived."""
    skipped, owners = 0, {}
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    try:
        for dirpath, dirs, files, dirfd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            info = os.fstat(dirfd)
            relative = os.path.normpath(dirpath)
            if relative == ".":
                dirs[:] = [d for d in dirs if d not in leave_out]
                files = [f for f in files if f not in leave_out]
            owner = _owner(relative, info, owners) if owner_only else None
            name = arcname if relative == "." else f"{arcname}/{relative}"
            tar.addfile(_tarinfo(name, info, tarfile.DIRTYPE))
            # fwalk lists a link to a directory among the directories (and skips it).
            links = [d for d in dirs if _is_link(d, dirfd)]
            for entry in [*files, *links]:
                skipped += _add_entry(tar, dirfd, entry, f"{name}/{entry}", owner)
    finally:
        os.close(top)
    return skipped


def _is_link(name: str, dirfd: int) -> bool:
    with contextlib.suppress(OSError):
        return stat.S_ISLNK(os.stat(name, dir_fd=dirfd, follow_symlinks=False).st_mode)
    return False


def _owner(relative: str, info: os.stat_result, owners: dict[str, int]) -> int | None:
    """The uid every entry below this top-level directory must have (its owner's)."""
    if relative == ".":
        return None
    first = relative.split(os.sep, 1)[0]
    if relative == first:
        owners[first] = info.st_uid
    return owners.get(first)


def _add_entry(tar: tarfile.TarFile, dirfd: int, entry: str, name: str, owner: int | None) -> int:
    info = os.stat(entry, dir_fd=dirfd, follow_symlinks=False)
    if owner is not None and info.st_uid != owner:
        return 1
    if stat.S_ISLNK(info.st_mode):
        member = _tarinfo(name, info, tarfile.SYMTYPE)
        member.linkname = os.readlink(entry, dir_fd=dirfd)
        tar.addfile(member)
        return 0
    if not stat.S_ISREG(info.st_mode):
        return 1  # sockets, pipes, devices: nothing to keep
    try:
        fd = os.open(entry, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=dirfd)
    except OSError:
        return 1  # swapped for a link or removed since it was listed
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
            info.st_dev,
            info.st_ino,
        ):
            return 1
        member = _tarinfo(name, opened, tarfile.REGTYPE)
        tar.addfile(member, _Exactly(handle, member.size))
    return 0


class _Exactly:
    """``size`` bytes of a file that may shrink or grow while it is read (zero-padded)."""

    def __init__(self, handle, size: int):
        self.handle, self.left = handle, size

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.handle.read(size)
        data += b"\0" * (size - len(data))
        self.left -= size
        return data


def _tarinfo(name: str, info: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.type = kind
    member.mode = stat.S_IMODE(info.st_mode)
    member.uid, member.gid = info.st_uid, info.st_gid
    member.mtime = int(info.st_mtime)
    member.size = info.st_size if kind == tarfile.REGTYPE else 0
    return member


class UnsafeArchive(ValueError):
    """An archive entry would land outside its directory."""


def extract_tree(tar: tarfile.TarFile, arcname: str, destination: Path, owners=None) -> None:
    """Extract the entries under ``arcname`` into ``destination``, which must not exist
    (made root-only, then given the archived mode). ``owners(uid, gid) -> (uid, gid)``
    maps the archived owners onto this machine's accounts."""
    destination.mkdir(mode=0o700)
    root = os.open(destination, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)
    top_mode = None
    try:
        for member in tar:
            parts = _parts(member.name, arcname)
            if parts is None:
                continue
            uid, gid = owners(member.uid, member.gid) if owners else (member.uid, member.gid)
            mode = member.mode & 0o1777  # no set-id bits
            if not parts:
                top_mode = (mode, uid, gid)
                continue
            parent = _open_directory(root, parts[:-1])
            try:
                _extract_one(tar, member, parent, parts[-1], mode, uid, gid)
            finally:
                os.close(parent)
        if top_mode:
            os.fchown(root, top_mode[1], top_mode[2])
            os.fchmod(root, top_mode[0])
    finally:
        os.close(root)


def _parts(name: str, arcname: str) -> list[str] | None:
    if name != arcname and not name.startswith(arcname + "/"):
        return None
    parts = [p for p in name[len(arcname) :].split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchive(f"{name}: '..' in an archived path")
    return parts


def _open_directory(root: int, parts: list[str]) -> int:
    fd = os.dup(root)
    for part in parts:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = child
    return fd


def _extract_one(tar, member, parent: int, name: str, mode: int, uid: int, gid: int) -> None:
    if member.isdir():
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW, dir_fd=parent)
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=parent)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        return
    elif member.isreg():
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
        fd = os.open(name, flags, 0o600, dir_fd=parent)
        source = tar.extractfile(member)
        with os.fdopen(os.dup(fd), "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    else:
        return
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        os.utime(fd, (member.mtime, member.mtime))
    finally:
        os.close(fd)
