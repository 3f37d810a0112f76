"""Run a build step as the person who launched it, with a deadline, its output line by line.

As root each step runs as the person's own account (code from the repository never runs
as root or as the hub); as an ordinary account, as that account. The step is a process
group of its own, killed whole when the deadline passes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass


class StepFailed(Exception):
    """A build step failed: ``message`` says which and why, ``line`` is its last output."""

    def __init__(self, message: str, line: str = ""):
        super().__init__(message)
        self.message, self.line = message, line


@dataclass(frozen=True)
class RunAs:
    """The account build steps run as (None uid: the hub's own)."""

    name: str
    uid: int | None = None
    gid: int | None = None

    def preexec(self):
        if self.uid is None:
            return None
        uid, gid = self.uid, self.gid

        def drop():
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        return drop

    def chown(self, path: str | os.PathLike) -> None:
        if self.uid is not None:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)


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
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=preexec,
        start_new_session=True,
    )
    tail: deque[str] = deque(maxlen=20)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StepFailed(f"{what} took too long: {timeout_hint}", tail[-1] if tail else "")
            try:
                raw = await asyncio.wait_for(process.stdout.readline(), remaining)
            except TimeoutError:
                continue  # the deadline check above raises
            if not raw:
                break
            line = raw.decode(errors="replace").rstrip()
            if line:
                tail.append(line)
                yield line
        code = await asyncio.wait_for(process.wait(), max(deadline - time.monotonic(), 1))
    except BaseException:
        _kill(process)
        raise
    finally:
        _kill(process)  # whatever the step left behind in its group
    if code != 0:
        raise StepFailed(f"{what} failed (exit status {code}).", failing_lines(list(tail)))


def failing_lines(tail: list[str], most: int = 6) -> str:
    """The lines that say why a step failed: from its last line naming an error on
    (with what follows, as uv and pip explain there), else its last line."""
    for i in range(len(tail) - 1, -1, -1):
        if "error" in tail[i].lower():
            return "\n".join(tail[i : i + most])
    return tail[-1] if tail else ""
