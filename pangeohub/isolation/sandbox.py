"""Each person's processes in their own space: Debian's bubblewrap around a command.

:func:`sandboxed` turns a command into one that runs it, as a person's account, in new
mount, PID and IPC namespaces: a private ``/tmp``, ``/var/tmp``, ``/dev/shm`` and
``/run/lock`` (tmpfs of a bounded size; their contents count against the cgroup the
process is in), its own ``/proc``
(only its own processes), and chosen root-owned trees hidden under an empty tmpfs with
only the person's own parts bound back. ``bwrap`` runs as root (the caller's process,
already in the person's cgroup) to make the mounts; ``setpriv`` then drops to the
person's uid, gid and groups, with every capability and ``no_new_privs`` (set-id files
cannot raise them again), before the command runs.

Used for servers (:mod:`pangeohub.spawner.local`), Dask schedulers and workers
(:mod:`pangeohub.isolation.gateway`) and anything else run for a person as root.

bubblewrap does not pass signals on to the command (its outer process just ends, and
takes the namespace with it), so :func:`signal_sandbox` signals the command itself,
which lets a server or a worker stop gracefully.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

BWRAP = "bwrap"
SETPRIV = "setpriv"
# Directories every account may write, each replaced by the sandbox's own tmpfs of a
# size: "tmp" (tmp_size), "shm" (shm_size) or bytes.
SHARED_DIRS = (("/tmp", "tmp"), ("/var/tmp", "tmp"), ("/dev/shm", "shm"), ("/run/lock", 1 << 20))


@functools.cache
def hub_software() -> tuple[str, ...]:
    """The parts of the hub's own installation in a directory the sandbox replaces
    (a checkout or virtualenv under ``/tmp``): servers and Dask workers run the hub's
    Python and import pangeohub from there, so the sandbox binds them back, read-only."""
    import pangeohub

    places = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(sys.executable))}
    places.add(os.path.dirname(os.path.abspath(pangeohub.__file__)))
    places |= {os.path.realpath(p) for p in places}
    return tuple(sorted(in_shared_dirs(places)))


def in_shared_dirs(paths) -> tuple[str, ...]:
    """The existing absolute ``paths`` in a directory the sandbox replaces (``/tmp``...)."""
    shared = [path for path, _ in SHARED_DIRS]
    return tuple(
        p
        for p in dict.fromkeys(str(p) for p in paths)
        if os.path.isabs(p)
        and os.path.exists(p)
        and any(Path(p).is_relative_to(top) for top in shared)
    )


def held_by_root(path: str) -> bool:
    """Whether no account but root can change where ``path`` leads: below its shared
    directory (sticky, root's), every component is root's, not a link, and writable by
    root alone. bwrap binds it as root, following links: a path someone else could
    make or swap (``/tmp/<name>``) would bind whatever they chose into the sandbox."""
    top = next((Path(t) for t, _ in SHARED_DIRS if Path(path).is_relative_to(t)), None)
    if top is None:
        return False
    try:
        info = os.lstat(top)
        if info.st_uid != 0 or not info.st_mode & stat.S_ISVTX:
            return False
        current = top
        for part in Path(path).relative_to(top).parts:
            current = current / part
            info = os.lstat(current)
            if stat.S_ISLNK(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
                return False
    except OSError:
        return False
    return True


class SandboxUnavailable(RuntimeError):
    """bubblewrap or setpriv is missing (the message says how to install it)."""


def sandbox_problem() -> str | None:
    """None if commands can be sandboxed here, else why not."""
    if os.geteuid() != 0:
        return "the hub is not running as root"
    for tool, package in ((BWRAP, "bubblewrap"), (SETPRIV, "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package}; `make setup` adds it)"
    return None


@dataclass(frozen=True)
class Sandbox:
    """What a person's process may see: who it runs as and which trees it keeps.

    ``hide``: root-owned directories replaced by an empty tmpfs (other people's homes,
    the Dask clusters' directories); ``keep``: paths under them bound back (the
    person's own), in order, each only if it exists; ``read_only``: files and
    directories in the directories every account may write (``/tmp``: an admin's wheels
    or certificates there), bound back read-only as the hub's own software is, each only
    if no account but root can change where it leads (:func:`held_by_root`).
    """

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    tmp_size: int = 1 << 30
    shm_size: int = 1 << 30
    hide: tuple[str, ...] = ()
    keep: tuple[str, ...] = field(default_factory=tuple)
    read_only: tuple[str, ...] = field(default_factory=tuple)

    def wrap(self, command: list[str]) -> list[str]:
        """``command`` run inside this sandbox, as the person."""
        if self.uid == 0 or self.gid == 0:
            raise ValueError("a sandbox is for a person's account, not root")
        bwrap = shutil.which(BWRAP)
        setpriv = shutil.which(SETPRIV)
        if bwrap is None or setpriv is None:
            raise SandboxUnavailable(sandbox_problem() or "bubblewrap is not installed")
        args = [bwrap, "--dev-bind", "/", "/", "--unshare-pid", "--unshare-ipc"]
        args += ["--proc", "/proc"]
        # every directory all accounts may write (/tmp, /var/tmp, /dev/shm, /run/lock):
        # the sandbox's own, bounded
        for path, size in SHARED_DIRS:
            if path in ("/tmp", "/dev/shm") or os.path.isdir(path):
                size = {"tmp": self.tmp_size, "shm": self.shm_size}.get(size, size)
                args += ["--size", str(int(size)), "--perms", "1777", "--tmpfs", path]
        hidden = [Path(h) for h in self.hide if os.path.isdir(h)]
        for path in hidden:
            args += ["--size", str(1 << 20), "--perms", "0711", "--tmpfs", str(path)]
        for path in self.keep:
            # directories bwrap makes on the way (in the tmpfs) are root's 0700: open them
            for top in (h for h in hidden if Path(path).is_relative_to(h)):
                parts = Path(path).relative_to(top).parts
                for depth in range(1, len(parts)):
                    args += ["--perms", "0711", "--dir", str(top.joinpath(*parts[:depth]))]
            args += ["--bind-try", path, path]
        read_only = [p for p in in_shared_dirs(self.read_only) if held_by_root(p)]
        for path in (*hub_software(), *read_only):
            for top in (Path(t) for t, _ in SHARED_DIRS if Path(path).is_relative_to(t)):
                parts = Path(path).relative_to(top).parts
                for depth in range(1, len(parts)):  # made in the sandbox's own tmpfs
                    args += ["--perms", "0755", "--dir", str(top.joinpath(*parts[:depth]))]
            args += ["--ro-bind", path, path]
        groups = ",".join(str(g) for g in self.groups)
        drop = [setpriv, "--reuid", str(self.uid), "--regid", str(self.gid)]
        drop += [f"--groups={groups}"] if groups else ["--clear-groups"]
        drop += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        return [*args, "--", *drop, *command]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def sandboxed_command_pid(pid: int) -> int | None:
    """The host pid of the command running in the sandbox whose ``bwrap`` is ``pid``.

    bubblewrap's outer process has one child, the namespace's init, whose one child is
    the command (after ``setpriv``, the same process). None if it is gone or not a sandbox.
    """
    try:
        if Path(f"/proc/{pid}/exe").resolve().name != BWRAP:
            return None
    except OSError:
        return None
    for init in _children(pid):
        for command in _children(init):
            return command
    return None


def signal_sandbox(pid: int, sig: int) -> bool:
    """Send ``sig`` to the command in the sandbox ``pid`` (its ``bwrap``), or to ``pid``
    itself when it has none (SIGKILL always goes to ``pid``: the namespace ends with
    it). True if ``pid`` still exists."""
    target = None if sig == signal.SIGKILL else sandboxed_command_pid(pid)
    try:
        os.kill(target or pid, sig)
    except ProcessLookupError:
        if target is None:
            return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        return True
    return False


__all__ = ["Sandbox", "SandboxUnavailable", "sandbox_problem", "signal_sandbox"]
