"""Why a pod on Kubernetes is stuck: its image cannot be pulled, or no node has room.

Pure functions over pods as the API serves them (dicts), read by the spawner's start
watchdog (:mod:`pangeohub.spawner.kube_watchdog`) and by the Dask Gateway backend
(:mod:`pangeohub.gateway.kube_pods`): the kubelet's container waiting states
(``ErrImagePull``, ``ImagePullBackOff``, ...) and the scheduler's ``PodScheduled=False``
condition (reason ``Unschedulable``). KubeSpawner has no such helper to reuse.
"""

from __future__ import annotations

from typing import NamedTuple

PULL_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
IMAGE, NO_ROOM = "image", "no-room"


class Trouble(NamedTuple):
    kind: str  # IMAGE or NO_ROOM
    detail: str  # the image that cannot be pulled, or the scheduler's words


def _stuck(pod: dict | None) -> dict | None:
    """The pod's status, or None when there is no pod or it is being deleted."""
    if not pod or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return pod.get("status") or {}


def pull_failure(pod: dict | None) -> tuple[dict, dict] | None:
    """(the container status, its waiting state) of a container whose image cannot be
    pulled, or None."""
    status = _stuck(pod)
    for container in (status or {}).get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_FAILURES:
            return container, waiting
    return None


def unschedulable(pod: dict | None) -> str | None:
    """The scheduler's words when no node has room for the pod, or None."""
    status = _stuck(pod)
    for condition in (status or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return (condition.get("message") or "no node has room").rstrip(".")
    return None


def pod_trouble(pod: dict | None) -> Trouble | None:
    """The reason ``pod`` cannot start, or None when it is starting, running, finished
    or being deleted."""
    failed = pull_failure(pod)
    if failed is not None:
        return Trouble(IMAGE, failed[0].get("image") or "")
    why = unschedulable(pod)
    return Trouble(NO_ROOM, why) if why is not None else None
