"""Why a Dask pod on Kubernetes is stuck, and what its user is told about it.

Pure functions over pods as the API serves them (dicts): :func:`pod_trouble` reads the
kubelet's container waiting states (``ErrImagePull``, ``ImagePullBackOff``, ...) and the
scheduler's ``PodScheduled=False`` condition (reason ``Unschedulable``); the message
functions say what happened and what to do, in one or two sentences, with no secret.
(KubeSpawner has no such helper to reuse; pangeohub's spawner reads the same fields.)
"""

from __future__ import annotations

from typing import NamedTuple

PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})
IMAGE, NO_ROOM = "image", "no-room"


class Trouble(NamedTuple):
    kind: str  # IMAGE or NO_ROOM
    detail: str  # the kubelet's or scheduler's words, for the log and the message


def pod_trouble(pod: dict | None) -> Trouble | None:
    """The reason ``pod`` cannot start (its image cannot be pulled, no node has room for
    it), or None when it is starting, running, finished or being deleted."""
    if not pod or pod.get("metadata", {}).get("deletionTimestamp"):
        return None
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_FAILURES:
            return Trouble(IMAGE, container.get("image") or "")
    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return Trouble(NO_ROOM, (condition.get("message") or "no node has room").rstrip("."))
    return None


def image_of(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return containers[0].get("image", "")


def start_failure_message(trouble: Trouble, pod: dict) -> str:
    """What a user whose new cluster's scheduler cannot start reads."""
    if trouble.kind == IMAGE:
        return (
            f"Your Dask cluster could not be started: its image {image_of(pod)!r} could not "
            "be downloaded. Leave image unset to use your server's image, choose another "
            "one, or tell a hub admin."
        )
    return (
        "Your Dask cluster could not be started: the Kubernetes cluster has no room for "
        f"its scheduler right now ({trouble.detail}). Please try again later; if this keeps "
        "happening, tell a hub admin."
    )


def workers_removed_message(trouble: Trouble, pod: dict, removed: int, kept: int) -> str:
    """What a user whose workers could not start reads when ``scale()`` asks for more."""
    one = removed == 1
    what = f"{removed} worker{'' if one else 's'}"
    if trouble.kind == IMAGE:
        why = f"the workers' image {image_of(pod)!r} could not be downloaded"
        todo = "Start a new cluster with another image, or tell a hub admin."
    else:
        why = f"the Kubernetes cluster has no room for {'it' if one else 'them'} ({trouble.detail})"
        todo = (
            "Ask for fewer or smaller workers (worker_cores, worker_memory), or start a new "
            "cluster later."
        )
    return (
        f"{what} of your cluster could not start and {'was' if one else 'were'} removed: "
        f"{why}. The cluster keeps {kept} and cannot add workers for 10 minutes. {todo}"
    )
