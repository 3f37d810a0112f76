"""The fake Kubernetes API behaves as the real one where KubeSpawner depends on it."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from kubernetes_asyncio import client, config, watch

from .conftest import NAMESPACE


@pytest.fixture(scope="module")
async def api(fake):
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(fake.kubeconfig), client_configuration=configuration
    )
    async with client.ApiClient(configuration) as api_client:
        yield client.CoreV1Api(api_client)


def pod(name, command, labels=None, restart="Never", grace=30):
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": grace,
            "containers": [
                {"name": "main", "image": "pangeo/base-notebook:2024.01.01", "args": command}
            ],
        },
    }


async def test_selectors_status_errors_and_watch_expiry(fake, api):
    await api.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "a", "labels": {"x": "1"}}})
    await api.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "b", "labels": {"x": "2"}}})
    names = lambda r: [i.metadata.name for i in r.items]  # noqa: E731
    assert names(await api.list_namespaced_secret(NAMESPACE, label_selector="x=1")) == ["a"]
    assert names(await api.list_namespaced_secret(NAMESPACE, label_selector="x in (1,2)")) == [
        "a",
        "b",
    ]
    assert names(
        await api.list_namespaced_secret(NAMESPACE, field_selector="metadata.name!=a")
    ) == ["b"]
    with pytest.raises(client.ApiException) as info:
        await api.list_namespaced_secret(NAMESPACE, field_selector="data.x=1")
    assert info.value.status == 400
    with pytest.raises(client.ApiException) as info:
        await api.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "a"}})
    assert info.value.status == 409 and "AlreadyExists" in info.value.body
    with pytest.raises(client.ApiException) as info:
        await api.create_namespaced_secret("nowhere", {"metadata": {"name": "a"}})
    assert info.value.status == 404 and 'namespaces \\"nowhere\\" not found' in info.value.body

    listed = await api.list_namespaced_secret(NAMESPACE)
    await api.delete_namespaced_secret("b", NAMESPACE)
    events = []
    async with watch.Watch().stream(
        api.list_namespaced_secret,
        NAMESPACE,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=1,
    ) as stream:
        async for event in stream:
            events.append((event["type"], event["object"].metadata.name))
    assert events == [("DELETED", "b")]

    fake.compact()
    with pytest.raises(client.ApiException) as info:
        async with watch.Watch().stream(
            api.list_namespaced_secret,
            NAMESPACE,
            resource_version=listed.metadata.resource_version,
            timeout_seconds=1,
        ) as stream:
            async for _ in stream:
                pass
    assert info.value.status == 410
    await api.delete_namespaced_secret("a", NAMESPACE)


async def test_owner_references_are_garbage_collected(fake, api):
    owner = await api.create_namespaced_pod(NAMESPACE, pod("owner", ["sleep", "30"]))
    ref = {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": owner.metadata.uid}
    body = {
        "metadata": {"name": "owned", "ownerReferences": [ref]},
        "spec": {"ports": [{"port": 80}]},
    }
    await api.create_namespaced_service(NAMESPACE, body)
    await api.delete_namespaced_pod("owner", NAMESPACE, grace_period_seconds=0)
    fake.wait_for(lambda: fake.get("services", "owned") is None, 5, what="service collected")
    assert fake.processes() == []


async def test_an_owner_in_another_namespace_is_absent(fake, api):
    """As Kubernetes' garbage collector: a namespaced dependent's owner must be in its
    namespace; one named in another namespace counts as absent, and the dependent goes
    (it is not kept, nor deleted with that owner)."""
    other = "elsewhere"
    fake.create("namespaces", {"metadata": {"name": other}})
    owner = await api.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "Secret", "name": "owner", "uid": owner.metadata.uid}
    body = {"metadata": {"name": "owned", "ownerReferences": [ref]}}
    await api.create_namespaced_secret(other, body)
    fake.wait_for(lambda: fake.get("secrets", "owned", other) is None, 5, what="collected")
    await api.create_namespaced_secret(NAMESPACE, body)  # beside its owner: kept
    fake.wait_for(lambda: fake.get("secrets", "owned") is not None, 5, what="kept")
    await api.delete_namespaced_secret("owner", NAMESPACE)
    fake.wait_for(lambda: fake.get("secrets", "owned") is None, 5, what="collected with it")


async def test_kubelet_runs_processes_with_restart_policy_and_grace(fake, api):
    # exits 3 and is not restarted (Never); its env and loopback IP are the pod's
    script = "import os, sys; print(os.environ['GREETING'], '0.0.0.0'); sys.exit(3)"
    body = pod("once", ["python", "-c", script])
    body["spec"]["containers"][0]["env"] = [{"name": "GREETING", "value": "hello"}]
    await api.create_namespaced_pod(NAMESPACE, body)
    done = fake.wait_for(
        lambda: (p := fake.get("pods", "once"))["status"]["phase"] == "Failed" and p, 10
    )
    state = done["status"]["containerStatuses"][0]["state"]["terminated"]
    assert state["exitCode"] == 3
    log = await api.read_namespaced_pod_log("once", NAMESPACE)
    assert log.strip() == f"hello {done['status']['podIP']}"
    await api.delete_namespaced_pod("once", NAMESPACE)

    # fails and is restarted (OnFailure)
    await api.create_namespaced_pod(
        NAMESPACE, pod("flaky", ["python", "-c", "raise SystemExit(1)"], restart="OnFailure")
    )
    fake.wait_for(
        lambda: fake.get("pods", "flaky")["status"]["containerStatuses"][0]["restartCount"] >= 1,
        10,
    )
    await api.delete_namespaced_pod("flaky", NAMESPACE, grace_period_seconds=0)

    # ignores SIGTERM: killed when its grace period ends; deletionTimestamp set meanwhile
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    await api.create_namespaced_pod(NAMESPACE, pod("stubborn", ["python", "-c", stubborn], grace=1))
    fake.wait_for(lambda: fake.get("pods", "stubborn")["status"]["phase"] == "Running", 10)
    fake.wait_for(lambda: fake.processes(), 5)
    deleted = await api.delete_namespaced_pod("stubborn", NAMESPACE)
    assert deleted.metadata.deletion_timestamp is not None
    fake.wait_for(lambda: fake.get("pods", "stubborn") is None, 10, what="pod gone after grace")
    assert fake.processes() == []
    kinds = {
        e["reason"]
        for e in fake.list("events", NAMESPACE)
        if e["involvedObject"]["name"] == "stubborn"
    }
    assert {"Scheduled", "Pulled", "Created", "Started", "Killing"} <= kinds


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in state  # a zombie has been killed, just not reaped yet


async def test_delete_kills_the_whole_process_group(fake, api):
    script = "sleep 30 & echo $! > child.pid; wait"
    await api.create_namespaced_pod(NAMESPACE, pod("family", ["sh", "-c", script]))
    pidfile = Path(fake.root, "pods", NAMESPACE, "family", "child.pid")
    child = int(fake.wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 10))
    assert alive(child)
    await api.delete_namespaced_pod("family", NAMESPACE, grace_period_seconds=0)
    fake.wait_for(lambda: not alive(child), 5, what="the pod's child process killed")


async def test_dropped_connection_fault(fake, api):
    fake.fault(r"/secrets$", drop=True)  # aiohttp retries a dropped idempotent request once
    try:
        with pytest.raises(aiohttp.ClientError):
            await api.list_namespaced_secret(NAMESPACE)
    finally:
        fake.clear_faults()
    assert (await api.list_namespaced_secret(NAMESPACE)).items == []
