"""The hub's shared reflectors on the fake API: watches resume instead of listing everything
again, an expired version still lists, and a server's events are read by its pod."""

from __future__ import annotations

import asyncio

import pytest
from kubespawner import KubeSpawner
from kubespawner.reflector import ResourceReflector

from pangeohub.spawner.kubernetes import PangeoKubeSpawner

from .conftest import NAMESPACE, make_user

PODS_PATH = f"/api/v1/namespaces/{NAMESPACE}/pods"
QUICK_WATCHES = {"ResourceReflector__timeout_seconds": 1}  # the API server ends each watch in 1s


@pytest.fixture
async def lists(monkeypatch):
    """Counts the full lists of pods the reflectors make; fresh reflectors before and after."""
    counted = {"pods": 0}
    list_and_update = ResourceReflector._list_and_update

    async def counting(self, resource_version=None):
        if self.kind == "pods":
            counted["pods"] += 1
        return await list_and_update(self, resource_version)

    monkeypatch.setattr(ResourceReflector, "_list_and_update", counting)
    await PangeoKubeSpawner._stop_all_reflectors()
    yield counted
    await PangeoKubeSpawner._stop_all_reflectors()


def pod_requests(fake) -> int:
    """GET requests on the pods path: lists and watches alike."""
    return list(fake.api.requests).count(("GET", PODS_PATH))


async def wait_for_watches(fake, lists, more: int) -> None:
    """Wait (bounded) until the pods reflector has opened `more` watches since now."""
    watches = lambda: pod_requests(fake) - lists["pods"]  # noqa: E731
    target = watches() + more
    for _ in range(300):
        if watches() >= target:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the pods reflector did not open {more} more watches in 15s")


async def test_watches_resume_from_the_last_version_without_listing(fake, make_spawner, lists):
    ana = make_spawner(make_user("resume-ana"), **QUICK_WATCHES)
    await ana.start()
    assert lists["pods"] == 2  # KubeSpawner's first load, then its watch loop's own list
    await wait_for_watches(fake, lists, 3)
    # changes made between resumed watches all reach the reflector: a pod deleted, one made
    await ana.stop()
    ben = make_spawner(make_user("resume-ben"), **QUICK_WATCHES)
    await ben.start()
    assert ben.current_pod()["status"]["phase"] == "Running"
    assert ana.current_pod() is None
    await wait_for_watches(fake, lists, 1)
    assert lists["pods"] == 2  # no watch since the first has listed every pod again
    await ben.stop()
    await ana.delete_forever()
    await ben.delete_forever()


async def test_relist_seconds_zero_lists_at_every_watch(fake, make_spawner, lists):
    spawner = make_spawner(
        make_user("relist-cy"), **QUICK_WATCHES, PangeoKubeSpawner__reflector_relist_seconds=0
    )
    await spawner.start()
    await wait_for_watches(fake, lists, 3)
    assert lists["pods"] >= 2 + 3  # KubeSpawner's own behaviour: a list before each watch
    await spawner.stop()
    await spawner.delete_forever()


@pytest.mark.allow_reflector_errors
async def test_an_expired_version_lists_again(fake, make_spawner, lists):
    dee = make_spawner(make_user("expired-dee"), **QUICK_WATCHES)
    await dee.start()
    await wait_for_watches(fake, lists, 1)
    before = lists["pods"]
    # a change the pods watch does not see moves the version past its last one
    fake.create("configmaps", {"metadata": {"name": "expired-dee"}}, NAMESPACE)
    fake.compact()  # etcd forgets the history: resuming from an older version gets 410 Gone
    for _ in range(300):
        if lists["pods"] > before:
            break
        await asyncio.sleep(0.05)
    assert lists["pods"] > before, "an expired resourceVersion did not make a full list"
    await dee.stop()  # and the reflector still follows the pods
    assert dee.current_pod() is None
    await dee.delete_forever()
    fake.delete("configmaps", "expired-dee", NAMESPACE)


async def test_a_servers_events_are_read_by_its_pod(fake, make_spawner, lists):
    eve = make_spawner(make_user("events-eve"))
    fay = make_spawner(make_user("events-fay"))
    await eve.start()
    await fay.start()
    mine = eve.events
    assert mine and {e["involvedObject"]["name"] for e in mine} == {eve.pod_name}
    assert mine == KubeSpawner.events.fget(eve)  # the same list KubeSpawner's sort gives
    messages = [e["message"] for e in mine]
    assert any("Started" in m or "started" in m for m in messages), messages
    for spawner in (eve, fay):
        await spawner.stop()
        await spawner.delete_forever()
    assert eve.events == KubeSpawner.events.fget(eve)
