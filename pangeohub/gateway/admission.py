"""Per-user limits across all of a user's clusters: the room left and the refusals.

A user's clusters together stay within the limits of their groups
(:meth:`~.options.GatewayPolicy.limits_for`): a new cluster, a ``scale`` or an
``adapt(minimum=...)`` that would pass one is refused with a message naming the limit and
what the user has running; what a scheduler asks for beyond them is capped at the room.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

from dask_gateway_server.backends.base import PublicException

from ..policy import format_bytes
from .options import Limits, describe_usage, plural


class Running(NamedTuple):
    """One of the user's clusters as it counts: its name, workers and configuration."""

    name: str
    workers: int
    config: Mapping


def usage(config: Mapping, workers: int) -> tuple[float, int]:
    """Cores and bytes a cluster with ``workers`` workers takes (scheduler included)."""
    cores = config["scheduler_cores"] + workers * config["worker_cores"]
    memory = config["scheduler_memory"] + workers * config["worker_memory"]
    return cores, memory


def running_summary(clusters: list[Running], other: bool = False) -> str:
    """What the user has running, and what to do about it."""
    if not clusters:
        return "You have no other clusters running."
    parts, total = [], [0, 0.0, 0]
    for c in clusters:
        cores, memory = usage(c.config, c.workers)
        total = [total[0] + c.workers, total[1] + cores, total[2] + memory]
        parts.append(f"{c.name} ({describe_usage(c.workers, cores, memory)})")
    what = plural(len(clusters), "other running cluster" if other else "running cluster")
    verb = "uses" if len(clusters) == 1 else "use"
    return (
        f"Your {what} {verb} {describe_usage(*total)}: "
        + "; ".join(parts)
        + ". Shut one down (cluster.shutdown() or Gateway().stop_cluster(name)) "
        "or scale it down, then try again."
    )


def headroom(limits: Limits, config: Mapping, others: list[Running]) -> tuple[int | float, str]:
    """Most workers a cluster with ``config`` may have beside ``others``, and the binding
    limit (``inf`` and "" when none binds)."""
    used_workers = sum(c.workers for c in others)
    used_cores = used_memory = 0
    for c in others:
        cores, memory = usage(c.config, c.workers)
        used_cores += cores
        used_memory += memory
    room = [(math.inf, "")]
    if limits.workers is not None:
        room.append((limits.workers - used_workers, f"{limits.workers} workers"))
    if limits.cores is not None:
        left = limits.cores - used_cores - config["scheduler_cores"]
        room.append((math.floor(left / config["worker_cores"]), f"{limits.cores:g} cores"))
    if limits.memory is not None:
        left = limits.memory - used_memory - config["scheduler_memory"]
        room.append((left // config["worker_memory"], format_bytes(limits.memory)))
    return min(room, key=lambda r: r[0])


def admit_cluster(limits: Limits, config: Mapping, active: list[Running]) -> None:
    """Refuse a new cluster with ``config`` beside the user's ``active`` ones if it
    would pass a limit (their number, or its scheduler's share)."""
    if limits.clusters is not None and len(active) >= limits.clusters:
        raise PublicException(
            f"You may run at most {limits.clusters} Dask clusters at once. "
            + running_summary(active)
        )
    room, limit = headroom(limits, config, active)
    if room < 0:
        raise PublicException(
            f"A new cluster's scheduler would take you past your limit of {limit}. "
            + running_summary(active)
        )


def admit_workers(
    limits: Limits, config: Mapping, others: list[Running], wanted: int, what: str
) -> None:
    """Refuse ``wanted`` workers for a cluster with ``config`` beside ``others`` if they
    would pass a limit (``what`` says how they were asked for, e.g. "Scaling to")."""
    room, limit = headroom(limits, config, others)
    if wanted > room:
        raise PublicException(
            f"{what} {plural(wanted, 'worker')} would take you past your limit of "
            f"{limit} (at most {plural(max(int(room), 0), 'worker')} for this cluster now). "
            + running_summary(others, other=True)
        )
