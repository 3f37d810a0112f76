"""Start failures: each gives the user a plain message and leaves no pod or claim behind."""

from __future__ import annotations

import asyncio

import pytest
from jupyterhub.spawner import SpawnException

from .conftest import NAMESPACE, make_user

PODS = rf"^/api/v1/namespaces/{NAMESPACE}/pods$"
EVENTS = rf"^/api/v1/namespaces/{NAMESPACE}/events$"


def leftovers(fake) -> tuple[list, list]:
    names = lambda plural: [o["metadata"]["name"] for o in fake.list(plural, NAMESPACE)]  # noqa: E731
    return names("pods"), names("persistentvolumeclaims")


async def start_stop_delete(spawner) -> None:
    """A start that works, then the server stopped and deleted (leaving nothing)."""
    await spawner.start()
    await spawner.stop()
    await spawner.delete_forever()


async def start_fails(spawner) -> SpawnException:
    with pytest.raises(SpawnException) as info:
        await spawner.start()
    failure = info.value
    assert failure.jupyterhub_message == failure.message
    assert "Traceback" not in failure.message and "Exception" not in failure.message
    return failure


async def wait_for_log(handler, text: str, timeout: float) -> None:
    """Wait (bounded) until a record the handler collected contains the text."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(text in record.getMessage() for record in handler.records):
        assert loop.time() < deadline, f"no reflector logged {text!r} within {timeout}s"
        await asyncio.sleep(0.1)


@pytest.fixture
def clean(fake):
    yield
    fake.clear_faults()
    fake.wait_for(lambda: leftovers(fake) == ([], []), 10, what="no pods or claims left")


@pytest.mark.parametrize(
    "status, words",
    [
        (403, "refused the hub permission"),
        (500, "answered with an error (HTTP 500)"),
    ],
)
async def test_api_errors(fake, make_spawner, clean, status, words):
    fake.fault(PODS, status, "POST")
    failure = await start_fails(make_spawner(make_user("frank")))
    assert words in failure.jupyterhub_message
    assert leftovers(fake) == ([], []), "the claim made for this start is removed"


async def test_failed_start_keeps_a_claim_it_did_not_make(fake, make_spawner, clean):
    # a default server: its claim is not read before the start; the create's 409 says
    fake.create("persistentvolumeclaims", {"metadata": {"name": "claim-frank"}})
    fake.fault(PODS, 500, "POST")
    try:
        await start_fails(make_spawner(make_user("frank")))
        assert leftovers(fake) == ([], ["claim-frank"]), "the earlier claim is kept"
    finally:
        fake.delete("persistentvolumeclaims", "claim-frank")


async def test_quota_exceeded(fake, make_spawner, clean):
    fake.create(
        "resourcequotas", {"metadata": {"name": "hub-quota"}, "spec": {"hard": {"pods": "0"}}}
    )
    try:
        failure = await start_fails(make_spawner(make_user("frank")))
    finally:
        fake.delete("resourcequotas", "hub-quota")
    assert "quota of servers in the cluster is used up" in failure.jupyterhub_message
    assert failure.status_code == 403
    assert leftovers(fake) == ([], [])


async def test_image_pull_failing(fake, make_spawner, clean):
    spawner = make_spawner(make_user("frank"), options={"profile": "broken"})
    failure = await start_fails(spawner)
    assert "image 'pangeo/no-such-image:0.0' could not be downloaded" in failure.jupyterhub_message
    assert "ErrImagePull" in failure.log_message or "ImagePullBackOff" in failure.log_message


async def test_not_scheduled_in_time(fake, make_spawner, clean):
    failure = await start_fails(make_spawner(make_user("frank"), options={"profile": "huge"}))
    assert "no room for a server of this size" in failure.jupyterhub_message
    assert "Insufficient cpu" in failure.jupyterhub_message


async def test_transient_faults_are_retried(fake, make_spawner, clean):
    fake.fault(PODS, method="POST", delay=2.5, times=1)  # slower than k8s_api_request_timeout
    fake.fault(PODS, 409, "POST", times=1)  # a stale pod of the same name
    spawner = make_spawner(make_user("frank"))
    await spawner.start()
    assert await spawner.poll() is None
    await spawner.stop()
    await spawner.delete_forever()


@pytest.mark.allow_reflector_errors
async def test_api_unreachable_then_back(fake, make_spawner, reflector_errors, clean):
    user = make_user("grace")
    await make_spawner(user).start()  # the hub is running: reflectors are watching
    await make_spawner(user).stop()
    fake.api_down()
    try:
        failure = await start_fails(make_spawner(user))
        # a longer outage: wait until a reflector's back-off has grown to 6.4s (0.2, 0.4,
        # ... 3.2, 6.4), which it logs before each retry
        await wait_for_log(reflector_errors, "retrying in 6.4s", timeout=60)
    finally:
        fake.api_up()
    assert "cannot reach the Kubernetes cluster" in failure.jupyterhub_message
    assert failure.status_code == 503
    # the next start works once the API is back (no wall-clock bound here: tests never
    # fail on time; the reflectors' recovery is what start_stop_delete waits for)
    await start_stop_delete(make_spawner(user))


@pytest.mark.allow_reflector_errors
async def test_hub_started_while_api_failing(fake, make_spawner, clean):
    from pangeohub.spawner.kubernetes import PangeoKubeSpawner

    await PangeoKubeSpawner._stop_all_reflectors()
    fake.fault(PODS, 500, "GET")  # the first list of pods fails
    try:
        failure = await start_fails(make_spawner(make_user("heidi")))
    finally:
        fake.clear_faults()
    assert "answered with an error (HTTP 500)" in failure.jupyterhub_message
    await start_stop_delete(make_spawner(make_user("heidi"), KubeSpawner__start_timeout=5))


@pytest.mark.allow_reflector_errors
async def test_pods_list_fails_while_events_list_in_flight(fake, make_spawner, clean):
    """The failed start must not leave the shared events reflector half loaded."""
    from pangeohub.spawner.kubernetes import PangeoKubeSpawner

    await PangeoKubeSpawner._stop_all_reflectors()
    fake.fault(PODS, 500, "GET")
    fake.fault(EVENTS, method="GET", delay=1, times=1)  # still loading when the pods list fails
    try:
        failure = await start_fails(make_spawner(make_user("heidi")))
    finally:
        fake.clear_faults()
    assert "answered with an error (HTTP 500)" in failure.jupyterhub_message
    spawner = make_spawner(make_user("heidi"), KubeSpawner__start_timeout=5)
    await asyncio.wait_for(spawner.start(), 60)  # a hang guard, not a time limit
    await spawner.stop()
    await spawner.delete_forever()


async def test_not_scheduled_when_start_timeout_ends(fake, make_spawner, clean):
    spawner = make_spawner(
        make_user("frank"),
        options={"profile": "huge"},
        PangeoKubeSpawner__scheduling_timeout=600,  # an autoscaler might still add a node
        KubeSpawner__start_timeout=3,
    )
    failure = await start_fails(spawner)
    assert "no room for a server of this size" in failure.jupyterhub_message
