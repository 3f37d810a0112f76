"""What the user of a Dask pod on Kubernetes that is stuck is told about it.

Why a pod is stuck (:func:`pod_trouble`) is :mod:`pangeohub.pod_troubles`, shared with the
spawner; the message functions here say what happened and what to do, in one or two
sentences, with no secret.
"""

from __future__ import annotations

from ..pod_troubles import IMAGE, Trouble


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
