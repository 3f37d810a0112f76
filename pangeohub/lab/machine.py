"""One machine: a profile never promises more CPU or memory than the machine has.

On one machine every server shares the hub's machine, so a profile asking for more
cores or memory than it has cannot be given them: a cgroup limit above the machine holds
nothing, and the Lab would say "of 4 cores" on a 2-core machine. pangeohub caps such a
profile at the machine's size and says so: once at start-up in the hub's log (which
profiles, what they ask, what their servers get), and on the spawn page, where the
profile's line shows what a server will get and why. Capping rather than refusing at
start-up keeps one configuration good on every machine (the bundle's sample offers a
4-core profile, and ``make run`` works on a 2-core laptop); an admin who wants the
profile's figures moves to a bigger machine or to Kubernetes, where nodes are sized for
profiles. Disks are not capped: each is a sparse image that uses only what is written.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass

from traitlets.config import Config

from ..policy import PangeoPolicy, Profile, format_bytes

GiB = 1024**3
LOCAL_SPAWNERS = ("pangeo-local", "PangeoLocalSpawner")


@dataclass(frozen=True)
class Machine:
    """What this machine can give a server: its usable cores and its memory."""

    cpus: int
    memory: int

    @classmethod
    def this_one(cls) -> Machine:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        # to a tenth of a GiB below: the size people read on the spawn page
        return cls(cpus=cpus or os.cpu_count() or 1, memory=int(memory // (GiB / 10) * GiB / 10))

    def excess(self, profile: Profile) -> list[str]:
        """What ``profile`` asks beyond this machine, in words ("4 CPU", "64 GiB memory")."""
        asked = []
        if profile.cpu_limit > self.cpus:
            asked.append(f"{profile.cpu_limit:g} CPU")
        if profile.mem_limit > self.memory:
            asked.append(f"{format_bytes(profile.mem_limit)} memory")
        return asked

    def fit(self, profile: Profile) -> Profile:
        """``profile`` as this machine can run it: limits (and guarantees) capped at its
        size, and its description saying so; unchanged when it fits."""
        asked = self.excess(profile)
        if not asked:
            return profile

        def at_most(value, cap):
            return None if value is None else min(value, cap)

        fitted = dataclasses.replace(
            profile,
            cpu_limit=min(profile.cpu_limit, self.cpus),
            mem_limit=min(profile.mem_limit, self.memory),
            cpu_guarantee=at_most(profile.cpu_guarantee, self.cpus),
            mem_guarantee=at_most(profile.mem_guarantee, self.memory),
        )
        note = f"Capped to this machine's size (the profile asks for {' and '.join(asked)})."
        description = f"{profile.description} {note}" if profile.description else note
        return dataclasses.replace(fitted, description=description)


def runs_on_one_machine(config: Config) -> bool:
    """Whether the hub's spawner is pangeohub's local one (servers share this machine)."""
    spawner = config.JupyterHub.get("spawner_class", "")
    name = spawner if isinstance(spawner, str) else getattr(spawner, "__name__", "")
    return any(local in name for local in LOCAL_SPAWNERS)


def announce_fit(config: Config, machine: Machine | None = None) -> None:
    """Log, at start-up, each profile larger than this machine and what it gets."""
    if not runs_on_one_machine(config):
        return
    machine = machine or Machine.this_one()
    for profile in PangeoPolicy(config=config).all_profiles():
        asked = machine.excess(profile)
        if asked:
            fitted = machine.fit(profile)
            logging.getLogger("JupyterHub").warning(
                "Profile %r asks for %s; this machine has %d CPU and %s memory: its servers "
                "get %s.",
                profile.display_name,
                " and ".join(asked),
                machine.cpus,
                format_bytes(machine.memory),
                fitted.summary(),
            )
