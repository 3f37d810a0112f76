"""Memory and CPU held by the kernel: one cgroup per server (cgroup v2, or v1).

A server and everything it starts (kernels, terminals) join its cgroup before the
server's command runs. Past the memory limit the kernel's OOM killer ends the biggest
process in the group (a kernel that allocated too much), not the small server process.
Swap is capped at zero so "2 GB" means 2 GB of memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CFS_PERIOD = 100_000  # microseconds


def cgroup_version(root: Path = ROOT) -> int | None:
    """1 or 2: the hierarchy with memory and CPU controllers here; None if there is none."""
    if (root / "memory" / "memory.limit_in_bytes").exists() and (root / "cpu").is_dir():
        return 1
    controllers = root / "cgroup.controllers"
    if controllers.exists() and {"memory", "cpu"} <= set(controllers.read_text().split()):
        return 2
    return None


def hub_trees(relative: str, root: Path = ROOT) -> list[str]:
    """The directory ``relative`` (the top of the hubs' cgroups) in every hierarchy that has
    it: what a sandbox hides, since cgroup directories are readable by every account and
    their names (``<account>/_dask-<cluster>``) and ``cgroup.procs`` say who runs what."""
    relative = relative.strip("/")
    if not relative:
        return []
    tops = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    return [str(top / relative) for top in tops if (top / relative).is_dir()]


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


class ServerCgroup:
    """The cgroup of one server: ``<parent>/<name>`` in each controller it needs."""

    def __init__(self, relative: str, version: int, root: Path = ROOT):
        self.relative = relative.strip("/")
        self.version = version
        self.root = root

    @property
    def directories(self) -> list[Path]:
        """The cgroup's directory in each hierarchy it lives in."""
        if self.version == 1:
            return [self.root / c / self.relative for c in ("memory", "cpu")]
        return [self.root / self.relative]

    def _enable_v2_controllers(self) -> None:
        """Let every ancestor hand memory and cpu down to the server's cgroup."""
        parts = Path(self.relative).parts
        for depth in range(len(parts)):
            parent = self.root.joinpath(*parts[:depth])
            with contextlib.suppress(OSError):
                _write(parent / "cgroup.subtree_control", "+memory +cpu")
            (parent / parts[depth]).mkdir(exist_ok=True)

    def create(
        self,
        mem_limit: int | None,
        cpu_limit: float | None,
        mem_guarantee: int | None = None,
        cpu_guarantee: float | None = None,
    ) -> None:
        """Create (or reuse) the cgroup and set its limits (None: no limit); idempotent."""
        quota = max(1000, int(cpu_limit * CFS_PERIOD)) if cpu_limit else None
        if self.version == 1:
            memory, cpu = self.directories
            memory.mkdir(parents=True, exist_ok=True)
            cpu.mkdir(parents=True, exist_ok=True)
            # memsw must stay >= the memory limit: lower it around the memory limit.
            memsw = memory / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                with contextlib.suppress(OSError):
                    _write(memsw, "-1")
            _write(memory / "memory.limit_in_bytes", str(mem_limit or -1))
            if memsw.exists():
                _write(memsw, str(mem_limit or -1))
            if mem_guarantee:
                _write(memory / "memory.soft_limit_in_bytes", str(mem_guarantee))
            _write(cpu / "cpu.cfs_period_us", str(CFS_PERIOD))
            _write(cpu / "cpu.cfs_quota_us", str(quota or -1))
            if cpu_guarantee:
                _write(cpu / "cpu.shares", str(max(2, int(1024 * cpu_guarantee))))
            return
        self._enable_v2_controllers()
        (directory,) = self.directories
        _write(directory / "memory.max", str(mem_limit or "max"))
        with contextlib.suppress(FileNotFoundError):
            _write(directory / "memory.swap.max", "0")
        if mem_guarantee:
            _write(directory / "memory.low", str(mem_guarantee))
        _write(directory / "cpu.max", f"{quota or 'max'} {CFS_PERIOD}")
        if cpu_guarantee:
            _write(directory / "cpu.weight", str(max(1, min(10000, int(100 * cpu_guarantee)))))

    def join(self, pid: int = 0) -> None:
        """Move ``pid`` (0: the calling process) into the cgroup."""
        for directory in self.directories:
            _write(directory / "cgroup.procs", str(pid))

    def pids(self) -> list[int]:
        """The processes in the cgroup now."""
        found: set[int] = set()
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(p) for p in (directory / "cgroup.procs").read_text().split())
        return sorted(found)

    def oom_kills(self) -> int:
        """How many processes the kernel has killed here for running out of memory."""
        events = (
            self.directories[0] / "memory.oom_control"
            if self.version == 1
            else self.directories[0] / "memory.events"
        )
        return read_oom_kills(events)

    def kill_all(self, timeout: float = 5) -> None:
        """SIGKILL whatever is left in the cgroup (a kernel the server did not stop)."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def remove(self) -> None:
        """Kill what is left and remove the cgroup (the hub's parents stay)."""
        self.kill_all()
        for directory in self.directories:
            with contextlib.suppress(OSError):  # gone already, or a zombie not yet reaped
                directory.rmdir()


def read_oom_kills(events: Path) -> int:
    """The ``oom_kill`` counter of a v1 ``memory.oom_control`` or v2 ``memory.events``."""
    with contextlib.suppress(OSError):
        for line in events.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    return 0


def own_oom_events(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = ROOT) -> Path | None:
    """The OOM counter file of the calling process's memory cgroup, if it has one."""
    with contextlib.suppress(OSError):
        for line in proc_cgroup.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                candidate = root / "memory" / path.lstrip("/") / "memory.oom_control"
                if candidate.exists():
                    return candidate
            if controllers == "" and (root / path.lstrip("/") / "memory.events").exists():
                events = root / path.lstrip("/") / "memory.events"
                if path != "/":
                    return events
    return None
