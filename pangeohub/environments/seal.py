"""Seal a finished build: owned by root (when built as root), read-only, no set-id bits.

Walks with directory file descriptors (``os.fwalk``) and never follows a link, so a link
a package ships (or a name swapped under the walk) changes nothing outside the build.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

_READ_ONLY_DIR = 0o555
_READ_ONLY_FILE = 0o444
_READ_ONLY_PROGRAM = 0o555


def _sealed_mode(mode: int) -> int:
    if stat.S_ISDIR(mode):
        return _READ_ONLY_DIR
    return _READ_ONLY_PROGRAM if mode & 0o111 else _READ_ONLY_FILE


def seal(path: Path) -> None:
    """Make everything under ``path`` (and ``path``) read-only for everyone, root's when
    the hub is root, with no set-user-id, set-group-id or sticky bit."""
    as_root = os.geteuid() == 0
    for _root, dirs, files, root_fd in os.fwalk(path, topdown=False, follow_symlinks=False):
        for name in (*dirs, *files):
            info = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                if as_root:
                    os.chown(name, 0, 0, dir_fd=root_fd, follow_symlinks=False)
                continue
            if not (stat.S_ISDIR(info.st_mode) or stat.S_ISREG(info.st_mode)):
                os.unlink(name, dir_fd=root_fd)  # no fifo, socket or device in an environment
                continue
            if as_root:
                os.chown(name, 0, 0, dir_fd=root_fd, follow_symlinks=False)
            os.chmod(name, _sealed_mode(info.st_mode), dir_fd=root_fd)
    if as_root:
        os.chown(path, 0, 0, follow_symlinks=False)
    os.chmod(path, _READ_ONLY_DIR)


def unseal_and_remove(path: Path) -> None:
    """Remove a sealed tree (its directories are read-only: made writable first, by fd,
    when the hub is not root)."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path):
        os.unlink(path)
        return
    if os.geteuid() != 0:
        os.chmod(path, 0o755)
        for _root, dirs, _files, root_fd in os.fwalk(path, follow_symlinks=False):
            for name in dirs:
                os.chmod(name, 0o755, dir_fd=root_fd)
    shutil.rmtree(path)
