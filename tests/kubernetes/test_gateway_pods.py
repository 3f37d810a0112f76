"""Why a Dask pod cannot start, read from pods as the kubelet and scheduler report them
(the same fields the fake kubelet in tests/k8s_fake/kubelet.py writes)."""

from __future__ import annotations

from pangeohub.gateway.kube_pods import start_failure_message, workers_removed_message
from pangeohub.pod_troubles import IMAGE, NO_ROOM, Trouble, pod_trouble, pull_failure

IMAGE_NAME = "pangeo/not-pushed-yet:2024.01.01"


def pod(status: dict, **metadata) -> dict:
    return {
        "metadata": {"name": "dask-worker-x", **metadata},
        "spec": {"containers": [{"name": "dask-worker", "image": IMAGE_NAME}]},
        "status": status,
    }


def waiting(reason: str) -> dict:
    state = {"waiting": {"reason": reason, "message": "rpc error: not found"}}
    return {
        "phase": "Pending",
        "containerStatuses": [{"name": "dask-worker", "image": IMAGE_NAME, "state": state}],
    }


UNSCHEDULABLE = {
    "phase": "Pending",
    "conditions": [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient memory.",
        }
    ],
}


def test_pull_failures_and_no_room_are_troubles_other_states_are_not():
    for reason in ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"):
        assert pod_trouble(pod(waiting(reason))) == Trouble(IMAGE, IMAGE_NAME)
    assert pod_trouble(pod(UNSCHEDULABLE)) == Trouble(
        NO_ROOM, "0/3 nodes are available: 3 Insufficient memory"
    )
    assert pod_trouble(pod(waiting("ContainerCreating"))) is None
    assert pod_trouble(pod({"phase": "Running"})) is None
    assert pod_trouble(pod(UNSCHEDULABLE, deletionTimestamp="2026-01-01T00:00:00Z")) is None
    assert pod_trouble(None) is None


def test_the_spawner_reads_the_kubelets_own_words_of_a_pull_failure():
    """The spawner's start watchdog and the gateway read the same module: the spawner logs
    the kubelet's reason and message, the gateway names the image."""
    container, waiting_state = pull_failure(pod(waiting("ErrImageNeverPull")))
    assert container["image"] == IMAGE_NAME
    assert waiting_state == {"reason": "ErrImageNeverPull", "message": "rpc error: not found"}


def test_messages_say_what_happened_and_what_to_do():
    image = start_failure_message(Trouble(IMAGE, IMAGE_NAME), pod(waiting("ErrImagePull")))
    assert f"its image '{IMAGE_NAME}' could not be downloaded" in image
    assert "Leave image unset" in image and "rpc error" not in image
    room = workers_removed_message(
        Trouble(NO_ROOM, "0/3 nodes are available: 3 Insufficient memory"),
        pod(UNSCHEDULABLE),
        removed=1,
        kept=2,
    )
    assert room.startswith("1 worker of your cluster could not start and was removed")
    assert "The cluster keeps 2 and cannot add workers for 10 minutes" in room
