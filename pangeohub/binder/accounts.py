"""The accounts builds run as when the hub is root: system accounts no person uses.

``<base>-0`` resolves refs (``git ls-remote``); ``<base>-1`` .. ``<base>-<max_builds>``
each run one build at a time, so two builds under way never share a uid and cannot
reach each other's files or processes. No person's process runs as any of them, so
everything running as a build slot's account belongs to that slot's build, and is
ended when each step of it ends.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import time

COMMENT = "pangeohub build account"
RESOLVER = 0  # the slot that only resolves refs


def slot_account(base: str, slot: int) -> str:
    return f"{base}-{slot}"


def ensure_build_account(name: str) -> pwd.struct_passwd:
    """The system account ``name`` (no home, no shell, own group), made if missing."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    command = [
        "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
        "--shell", "/usr/sbin/nologin", "--user-group", "--comment", COMMENT, name,
    ]  # fmt: skip
    for attempt in range(20):  # another tool may hold /etc/passwd's lock for a moment
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode == 0 or "lock" not in done.stderr:
            break
        time.sleep(0.05 * (attempt + 1))
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise OSError(f"useradd could not make the build account {name}") from None


SHARED_TEMPORARY = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")


def remove_shared_files_of(uid: int, gid: int) -> None:
    """Remove what the account ``uid`` left in the machine's shared temporary directories
    (what one build leaves there could wait for the next build of the same slot). Run
    as that account, so it can remove only its own."""
    if uid == 0 or uid == os.geteuid():
        raise ValueError("only a build account's own files are removed")
    places = [p for p in SHARED_TEMPORARY if os.path.isdir(p)]
    script = 'find "$@" -mindepth 1 -maxdepth 1 -user "$(id -u)" -exec rm -rf -- {} + 2>/dev/null'

    def drop():
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    subprocess.run(
        ["/bin/sh", "-c", script, "sh", *places],
        preexec_fn=drop, cwd="/", env={"PATH": "/usr/bin:/bin"}, capture_output=True,
        timeout=60, check=False,
    )  # fmt: skip


def processes_of(uid: int) -> list[int]:
    """Live processes (not zombies) with ``uid`` as any of their user ids."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            if fields.get("State", "").split()[:1] in (["Z"], ["X"]):
                continue
            if str(uid) in fields.get("Uid", "").split():
                found.append(int(entry))
    return found


def kill_processes_of(uid: int, passes: int = 100) -> None:
    """SIGKILL everything running as ``uid`` (a build slot's account), until none is left."""
    if uid == 0 or uid == os.geteuid():
        raise ValueError("refusing to kill the hub's own or root's processes")
    for _ in range(passes):
        pids = processes_of(uid)
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)  # let the kernel finish the kills before looking again
    raise OSError(f"processes of uid {uid} keep appearing; the build cannot be sealed")
