"""Memory and CPU of a build on one machine: a cgroup of its own for each build.

The servers' cgroups (:mod:`pangeohub.isolation.cgroups`) are reused: every step of a
build (git, uv, postBuild) joins ``<cgroup_parent>/binder-builds/<build>`` before it drops
to the build's account, so the kernel holds the whole build to ``c.BinderBuilder``'s
``mem_limit`` and ``cpu_limit``. Past the memory limit the kernel's OOM killer ends the
biggest process; the build then fails saying it ran out of memory. After each step
whatever the step left running (even a process that left its process group) is killed,
and the cgroup is removed with the build.

Without cgroups (the hub not root, or no memory and cpu controllers) builds are not held
and only the time and size limits apply.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..isolation import Isolation
from ..isolation.cgroups import ServerCgroup

BUILDS = "binder-builds"


class BuildCgroup:
    """The cgroup of one build (``cgroup`` None: the machine has none to give)."""

    def __init__(self, cgroup: ServerCgroup | None, mem_limit: int, cpu_limit: float):
        self.cgroup, self.mem_limit, self.cpu_limit = cgroup, mem_limit, cpu_limit
        self._kills = 0

    @classmethod
    def for_build(cls, parent, name: str, mem_limit: int, cpu_limit: float) -> BuildCgroup:
        isolation = Isolation(parent=parent)
        version = isolation.cgroups()
        if version is None:
            return cls(None, mem_limit, cpu_limit)
        relative = f"{isolation.cgroup_parent}/{BUILDS}/{name}"
        return cls(ServerCgroup(relative, version), mem_limit, cpu_limit)

    @property
    def active(self) -> bool:
        return self.cgroup is not None

    def create(self) -> None:
        if self.cgroup is None:
            return
        # no memory limit asked: the machine's memory; no CPU limit: every CPU
        memory = self.mem_limit or _machine_memory()
        self.cgroup.create(memory, self.cpu_limit or _cpus())
        self._kills = self.cgroup.oom_kills()

    def preexec(self, then=None):
        """A ``preexec_fn`` joining the cgroup (as root), then running ``then``."""
        if self.cgroup is None:
            return then
        cgroup = self.cgroup

        def join_then_drop():
            cgroup.join()
            if then is not None:
                then()

        return join_then_drop

    def ran_out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the build for its memory since the last
        call (or since :meth:`create`)."""
        if self.cgroup is None:
            return False
        kills = self.cgroup.oom_kills()
        out, self._kills = kills > self._kills, kills
        return out

    def own_directories(self) -> tuple[str, ...]:
        """The build's cgroup directories: its steps see their own limits in a sandbox
        that hides every other cgroup."""
        return tuple(str(d) for d in self.cgroup.directories) if self.cgroup else ()

    def end_step(self) -> None:
        """Kill what a finished step left running in the build's cgroup."""
        if self.cgroup is not None:
            self.cgroup.kill_all()

    def remove(self) -> None:
        if self.cgroup is not None:
            self.cgroup.remove()


def remove_stale(parent, building: Path) -> None:
    """Remove build cgroups a killed hub left behind: those whose build directory under
    ``building`` is gone (each build makes its directory before its cgroup and removes
    its cgroup before its directory, or after its directory became the environment)."""
    isolation = Isolation(parent=parent)
    version = isolation.cgroups()
    if version is None:
        return
    top = f"{isolation.cgroup_parent}/{BUILDS}"
    for directory in ServerCgroup(top, version).directories:
        with contextlib.suppress(OSError):
            for child in directory.iterdir():
                if child.is_dir() and not (building / child.name).exists():
                    ServerCgroup(f"{top}/{child.name}", version).remove()


def _machine_memory() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 2**40


def _cpus() -> float:
    return float(os.cpu_count() or 1)
