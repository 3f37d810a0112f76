"""Sealing a build: root copies what a build made into a fresh tree of its own, through
directory file descriptors that never follow links, then checks the result.

The build's tree is written by the build's account, so nothing in it is trusted: every
directory is opened with ``O_NOFOLLOW | O_DIRECTORY`` relative to its parent's
descriptor, every file with ``O_NOFOLLOW`` and checked with ``fstat`` after opening, and
every file root writes is new (``O_CREAT | O_EXCL``) in a directory only root can write.
So a link, a hard link, a file swapped mid-walk or a descriptor the build kept open can
never make root read or write anything outside the build, and the sealed tree shares no
inode with what the build can still reach. Nothing keeps set-id bits: directories and
executables become 0755, other files 0644. Links are copied as links; one that leads out
of the tree must lead only through directories and files no account but root can change.
"""

from __future__ import annotations

import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1 << 20
MAX_DEPTH = 64  # directories nested deeper than this are refused (each level holds a descriptor)


class SealError(Exception):
    """The build's result cannot be used (the message says why, for the person)."""


def open_dir(name: str | os.PathLike, dir_fd: int | None = None) -> int:
    """A directory's descriptor; fails (ELOOP / ENOTDIR) on a link or a non-directory."""
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def _too_deep(where: str) -> SealError:
    return SealError(
        f"{where} is nested more than {MAX_DEPTH} directories deep; the environment cannot be used."
    )


def _size_under(fd: int, depth: int, where: str) -> int:
    total = 0
    for name in os.listdir(fd):
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError:
            continue
        total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            if depth >= MAX_DEPTH:
                raise _too_deep(f"{where}/{name}")
            try:
                child = open_dir(name, fd)
            except OSError:
                continue  # swapped for a link meanwhile: not followed
            try:
                total += _size_under(child, depth + 1, f"{where}/{name}")
            finally:
                os.close(child)
    return total


def tree_size(top: str | os.PathLike) -> int:
    """Bytes on disk under the directory ``top``, walked by descriptors that never follow
    links (a :class:`SealError` past ``MAX_DEPTH`` levels)."""
    try:
        fd = open_dir(top)
    except OSError:
        return 0
    try:
        return _size_under(fd, 0, os.path.basename(os.fspath(top)))
    finally:
        os.close(fd)


class _Copier:
    def __init__(self, owner: int | None, limit: int):
        self.owner, self.limit, self.size = owner, limit, 0

    def charge(self, nbytes: int, where: str) -> None:
        self.size += nbytes
        if self.size > self.limit:
            raise SealError(
                f"the environment grew past {self.limit / 2**20:.0f} MiB "
                f"(c.BinderBuilder.max_size) while it was sealed ({where}); make it smaller."
            )

    def check_owner(self, info: os.stat_result, where: str) -> None:
        if self.owner is not None and info.st_uid != self.owner:
            raise SealError(
                f"{where} was not made by the build (a link to a file elsewhere?); "
                "the environment cannot be used."
            )

    def copy_dir(self, src: int, dst: int, where: str, depth: int) -> None:
        for name in sorted(os.listdir(src)):
            path = f"{where}/{name}"
            info = os.stat(name, dir_fd=src, follow_symlinks=False)
            self.check_owner(info, path)
            if stat.S_ISDIR(info.st_mode):
                if depth >= MAX_DEPTH:
                    raise _too_deep(path)
                self.copy_subdir(src, dst, name, path, depth + 1)
            elif stat.S_ISREG(info.st_mode):
                self.copy_file(src, dst, name, path)
            elif stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
                self.charge(512, path)
            # sockets, pipes: nothing an environment needs; left behind

    def copy_subdir(self, src: int, dst: int, name: str, where: str, depth: int = 0) -> None:
        child_src = open_dir(name, src)
        try:
            info = os.fstat(child_src)
            self.check_owner(info, where)
            os.mkdir(name, 0o700, dir_fd=dst)
            child_dst = open_dir(name, dst)
            try:
                self.copy_dir(child_src, child_dst, where, depth)
                os.fchmod(child_dst, 0o755)
                os.utime(child_dst, ns=(info.st_atime_ns, info.st_mtime_ns))
            finally:
                os.close(child_dst)
        finally:
            os.close(child_src)
        self.charge(4096, where)

    def copy_file(self, src: int, dst: int, name: str, where: str) -> None:
        source = os.open(name, FILE_FLAGS, dir_fd=src)
        try:
            info = os.fstat(source)
            if not stat.S_ISREG(info.st_mode):
                return  # swapped for something else since it was listed
            self.check_owner(info, where)
            self.charge(max(info.st_size, 512), where)
            target = os.open(name, NEW_FILE, 0o600, dir_fd=dst)
            try:
                remaining = info.st_size
                while remaining > 0:
                    sent = os.sendfile(target, source, None, min(remaining, CHUNK))
                    if sent == 0:
                        break  # shrank meanwhile: what was there is what is sealed
                    remaining -= sent
                os.fchmod(target, 0o755 if info.st_mode & 0o111 else 0o644)
                os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))  # keeps .pyc valid
            finally:
                os.close(target)
        finally:
            os.close(source)


def seal_copy(work: str | os.PathLike, names: list[str], sealed: str | os.PathLike, *,
              owner: int | None, limit: int) -> int:  # fmt: skip
    """Copy ``work/<name>`` for each of ``names`` into the new directory ``sealed`` (made
    here, 0700 until done); the bytes copied. ``owner``: the uid every entry must have."""
    copier = _Copier(owner, limit)
    work_fd = open_dir(work)
    try:
        os.mkdir(sealed, 0o700)
        sealed_fd = open_dir(sealed)
        try:
            for name in names:
                try:
                    info = os.stat(name, dir_fd=work_fd, follow_symlinks=False)
                except FileNotFoundError:
                    info = None
                if info is None or not stat.S_ISDIR(info.st_mode):
                    raise SealError(f"the build left no directory {name}; it cannot be used.")
                copier.copy_subdir(work_fd, sealed_fd, name, name)
        finally:
            os.close(sealed_fd)
    finally:
        os.close(work_fd)
    return copier.size


def trusted_target(path: str, trusted_uids: set[int], depth: int = 0) -> bool:
    """Whether the absolute ``path`` leads, link by link, only through directories and
    files owned by ``trusted_uids`` that no one else may write (a missing end is fine:
    only its trusted parent's owner could make it)."""
    if depth > 40 or not path.startswith("/"):
        return False
    current = "/"
    parts = path.split("/")
    for i, part in enumerate(parts):
        if part in ("", "."):
            continue
        if part == "..":
            current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(candidate)
            rest = "/".join(parts[i + 1 :])
            base = target if target.startswith("/") else os.path.join(current, target)
            return trusted_target(os.path.join(base, rest), trusted_uids, depth + 1)
        if info.st_uid not in trusted_uids or info.st_mode & 0o022:
            return False
        current = candidate
    root = os.lstat("/")
    return root.st_uid in trusted_uids and not root.st_mode & 0o022


def verify(sealed: str | os.PathLike, final: str, trusted_uids: set[int]) -> None:
    """Check the sealed tree as it will be used at ``final``: only directories, files and
    links made by the hub, none writable by others, no set-id bits, no file with another
    name, and every link out of the tree leading only where no one but root can write."""
    for top, dirs, files, top_fd in os.fwalk(sealed, follow_symlinks=False):
        relative = os.path.relpath(top, sealed)
        for name in (*dirs, *files):
            where = os.path.normpath(os.path.join(relative, name))
            info = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
            mode = info.st_mode
            kind_ok = stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)
            if (
                not kind_ok
                or info.st_uid not in trusted_uids
                or (not stat.S_ISLNK(mode) and mode & (0o022 | 0o7000))
                or (stat.S_ISREG(mode) and info.st_nlink != 1)
            ):
                raise SealError(f"{where} did not seal as expected; the environment is not used.")
            if stat.S_ISLNK(mode):
                target = os.readlink(name, dir_fd=top_fd)
                inside = os.path.normpath(os.path.join(relative, target))
                if target.startswith("/") or inside == ".." or inside.startswith("../"):
                    absolute = os.path.join(final, relative, target)
                    if not trusted_target(os.path.normpath(absolute), trusted_uids):
                        raise SealError(
                            f"{where} is a link to {target[:120]}, which others than root "
                            "can change; remove it from the build."
                        )


def executable_file(sealed: str | os.PathLike, relative: str) -> None:
    """Make ``sealed/relative`` executable if it is a plain file reached without links,
    else refuse (a SealError naming it)."""
    parts = relative.split("/")
    fd = open_dir(sealed)
    try:
        for part in parts[:-1]:
            try:
                child = open_dir(part, fd)
            except OSError:
                raise SealError(f"{relative} is not a plain file; it cannot be used.") from None
            os.close(fd)
            fd = child
        try:
            info = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise SealError(f"{relative} is not a plain file; it cannot be used.")
        os.chmod(parts[-1], 0o755, dir_fd=fd)  # a plain file in root's own tree
    finally:
        os.close(fd)
