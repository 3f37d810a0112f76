"""Run a build step as a build account, with a deadline, its output line by line.

As root each step runs as the build's own system account (:mod:`.accounts`; code from
the repository never runs as root, as the hub or as a person); as an ordinary account,
as that account. The step is a process
group of its own, killed whole when the deadline passes. When the step's own process has
ended but something it started still holds its output open (a daemon, even in a session
of its own), that is ended too (the whole build cgroup, where there is one) instead of the
build waiting for its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

EXIT_CHECK = 0.5  # seconds between checks whether a step still writing has itself ended
ORPHAN_GRACE = 2.0  # seconds the output of an ended step may stay open (then it is over)


class StepFailed(Exception):
    """A build step failed: ``message`` says which and why, ``line`` is its last output."""

    def __init__(self, message: str, line: str = ""):
        super().__init__(message)
        self.message, self.line = message, line


@dataclass(frozen=True)
class RunAs:
    """The account build steps run as (None uid: the hub's own).

    ``sandbox``: a wrapper with ``wrap(argv)`` that starts each step in namespaces of its
    own (private ``/tmp``, its own PIDs) and drops to ``uid`` itself; None: the step drops
    to ``uid`` in the child before it runs."""

    name: str
    uid: int | None = None
    gid: int | None = None
    sandbox: object | None = None

    def command(self, argv: list[str], own: tuple[str, ...] = ()) -> list[str]:
        """``argv`` as the step runs it; ``own``: what the sandbox shows the step of its
        own among what it hides (its cgroup's directories)."""
        if self.sandbox is None:
            return list(argv)
        return replace(self.sandbox, keep=(*self.sandbox.keep, *own)).wrap(argv)

    def preexec(self):
        if self.uid is None or self.sandbox is not None:
            return None
        uid, gid = self.uid, self.gid

        def drop():
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            no_new_privileges()

        return drop

    def chown(self, path: str | os.PathLike) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)


_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before any fork
PR_SET_NO_NEW_PRIVS = 38


def no_new_privileges() -> None:
    """From here on no exec gains privileges (set-id files such as ``crontab``, ``at``,
    ``su`` run without them), for this process and all it starts."""
    if _LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def _kill(process: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_step(
    argv: list[str],
    *,
    run_as: RunAs,
    cwd: str,
    env: dict[str, str],
    deadline: float,
    what: str,
    timeout_hint: str,
    limits=None,
) -> AsyncIterator[str]:
    """Yield ``argv``'s output lines; :class:`StepFailed` if it fails or outlives ``deadline``
    (a :func:`time.monotonic` value). Nothing it started is left running. ``limits`` (a
    :class:`~pangeohub.binder.limits.BuildCgroup`): the step runs in the build's cgroup."""
    preexec = run_as.preexec()
    if limits is not None:
        preexec = limits.preexec(preexec)
    process = await asyncio.create_subprocess_exec(
        *run_as.command(argv, limits.own_directories() if limits is not None else ()),
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=preexec,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=20)
    reader: asyncio.Future | None = None
    orphans_until: float | None = None  # the step ended; what it left holds its output
    try:
        while True:
            now = time.monotonic()
            if orphans_until is not None and now >= orphans_until:
                # Whatever still holds the output escaped (no build cgroup here): the step's
                # output is over. Close our end of the pipe (asyncio has no public call).
                transport = getattr(process, "_transport", None)
                if transport is not None:
                    transport.close()
                break
            if now >= deadline:
                raise StepFailed(f"{what} took too long: {timeout_hint}", tail[-1] if tail else "")
            if reader is None:
                reader = asyncio.ensure_future(process.stdout.readline())
            until = deadline if orphans_until is None else min(deadline, orphans_until)
            await asyncio.wait({reader}, timeout=min(until - now, EXIT_CHECK))
            if not reader.done():
                if process.returncode is not None and orphans_until is None:
                    # The step's own process ended but its output stays open: a process it
                    # started (even in another session) holds it. End them so it closes.
                    _kill(process)
                    if limits is not None:
                        await asyncio.to_thread(limits.end_step)
                    orphans_until = time.monotonic() + ORPHAN_GRACE
                continue
            raw, reader = reader.result(), None
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip()
            if line:
                tail.append(line)
                yield line
        code = process.returncode
        if code is None:
            code = await asyncio.wait_for(process.wait(), max(deadline - time.monotonic(), 1))
    except BaseException:
        _kill(process)
        raise
    finally:
        if reader is not None:
            reader.cancel()
        _kill(process)  # whatever the step left behind in its group
        if process.returncode is None:  # reaped here, even when the step was cancelled
            with contextlib.suppress(TimeoutError, ProcessLookupError):
                await asyncio.wait_for(process.wait(), 5)
    if code != 0:
        raise StepFailed(f"{what} failed (exit status {code}).", failing_lines(list(tail)))


def failing_lines(tail: list[str], most: int = 6) -> str:
    """The lines that say why a step failed: from its last line naming an error on
    (with what follows, as uv and pip explain there), else its last line."""
    for i in range(len(tail) - 1, -1, -1):
        if "error" in tail[i].lower():
            return "\n".join(tail[i : i + most])
    return tail[-1] if tail else ""
