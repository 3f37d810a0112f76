"""The Kubernetes backend's server records and what clusters belong to, in both layouts:
the clusters in a namespace of their own (deploy/'s) and beside the servers. The real
backend's record code against the fake API (whose garbage collector, like Kubernetes',
treats an owner in another namespace as absent); the whole gateway runs in
test_gateway.py."""

from __future__ import annotations

import pytest
from kubernetes_asyncio import client
from traitlets.config import Config

from pangeohub.gateway.kube_records import RECORD_LABEL
from pangeohub.gateway.kubernetes import PangeoKubeBackend

from ..k8s_fake import FakeKube
from ..k8s_fake.crds import DASK_GATEWAY_CRDS

HUB_NS, DASK_NS = "hub-ns", "dask-ns"
G, V = "gateway.dask.org", "v1alpha1"


@pytest.fixture(scope="module")
def kube():
    with FakeKube(namespace=HUB_NS, backoff=0.2) as fake:
        for definition in DASK_GATEWAY_CRDS:
            fake.define(definition)
        fake.create("namespaces", {"metadata": {"name": DASK_NS}})
        yield fake


@pytest.fixture
async def api(kube):
    api_client = client.ApiClient(client.Configuration(host=kube.url))
    yield api_client
    await api_client.close()


def backend(api_client, clusters_namespace: str) -> PangeoKubeBackend:
    """The backend with its API clients, as its setup() makes them (no informers)."""
    c = Config()
    c.KubeClusterConfig.namespace = clusters_namespace
    c.KubeBackend.gateway_instance = "dask-gateway"
    made = PangeoKubeBackend(config=c)
    made.api_client = api_client
    made.core_client = client.CoreV1Api(api_client)
    return made


def server_pod(kube, name: str, namespace: str) -> dict:
    container = {"name": "notebook", "image": "pangeo/base-notebook:2024.01.01"}
    body = {
        "metadata": {"name": name},
        "spec": {"containers": [{**container, "args": ["sleep", "60"]}]},
    }
    return kube.create("pods", body, namespace)


async def report(b: PangeoKubeBackend, user: str, pod: str, namespace: str) -> dict:
    """The hub reports a started server (hub_routes.record_server)."""
    record = {"image": "pangeo/base-notebook:2024.01.01", "environment": {}}
    record.update(pod=pod, namespace=namespace)
    b.server_records.put(user, "/", record)
    await b.server_recorded(user, "/", record)
    return record


async def cluster_of(b: PangeoKubeBackend, api_client, user: str) -> dict:
    """A DaskCluster made as start_cluster makes it: owned as the backend says."""
    owner = await b._server_pod_owner(user, {"server": "/"})
    obj = {
        "apiVersion": f"{G}/{V}",
        "kind": "DaskCluster",
        "metadata": {"name": f"cluster-of-{user}", "ownerReferences": [owner]},
        "spec": {"username": user, "replicas": 0},
    }
    custom = client.CustomObjectsApi(api_client)
    return await custom.create_namespaced_custom_object(
        G, V, b.clusters_namespace, "daskclusters", obj
    )


def gc_settled(kube) -> None:
    """The fake's garbage collector has looked at what was made so far (it runs on the
    fake's loop, in order, before this call does)."""
    kube.call(lambda: None)


def records(kube, namespace: str) -> list[dict]:
    return kube.list("secrets", namespace, f"{RECORD_LABEL}=true")


async def test_clusters_in_their_own_namespace_belong_to_the_servers_record(kube, api):
    b = backend(api, DASK_NS)
    server_pod(kube, "jupyter-ada", HUB_NS)
    await report(b, "ada", "jupyter-ada", HUB_NS)
    (record,) = records(kube, DASK_NS)
    assert "ownerReferences" not in record["metadata"], "an owner must share its namespace"
    assert records(kube, HUB_NS) == [], "nothing of the gateway's in the hub's namespace"
    made = await cluster_of(b, api, "ada")
    assert made["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "name": record["metadata"]["name"],
            "uid": record["metadata"]["uid"],
        }
    ]
    gc_settled(kube)
    assert kube.get("daskclusters", made["metadata"]["name"], DASK_NS) is not None

    # A restarted gateway reads the record back; the pod goes while it is down.
    again = backend(api, DASK_NS)
    kube.delete("pods", "jupyter-ada", HUB_NS, grace=0)
    assert kube.get("pods", "jupyter-ada", HUB_NS) is None
    await again._load_server_records()
    assert records(kube, DASK_NS) == [] and again.server_records.servers("ada") == {}
    kube.wait_for(
        lambda: kube.get("daskclusters", made["metadata"]["name"], DASK_NS) is None,
        5,
        what="the cluster deleted with its server's record",
    )


async def test_a_server_whose_pod_is_gone_or_replaced_loses_its_record_and_clusters(kube, api):
    b = backend(api, DASK_NS)
    server_pod(kube, "jupyter-grace", HUB_NS)
    await report(b, "grace", "jupyter-grace", HUB_NS)
    first = await cluster_of(b, api, "grace")
    assert await b._forget_gone_servers() == [], "its pod is there"
    # the server's pod replaced by one of the same name (the hub was down: no stop hook)
    kube.delete("pods", "jupyter-grace", HUB_NS, grace=0)
    server_pod(kube, "jupyter-grace", HUB_NS)
    assert await b._forget_gone_servers() == [("grace", "/")]
    assert records(kube, DASK_NS) == []
    kube.wait_for(
        lambda: kube.get("daskclusters", first["metadata"]["name"], DASK_NS) is None,
        5,
        what="the earlier pod's cluster deleted",
    )
    # the hub reports the new server: a new record, and its clusters belong to it
    await report(b, "grace", "jupyter-grace", HUB_NS)
    second = await cluster_of(b, api, "grace")
    (record,) = records(kube, DASK_NS)
    assert second["metadata"]["ownerReferences"][0]["uid"] == record["metadata"]["uid"]
    # a record deleted behind the gateway's back is kept again before a cluster names it
    kube.delete("secrets", record["metadata"]["name"], DASK_NS)
    kube.wait_for(lambda: kube.get("daskclusters", second["metadata"]["name"], DASK_NS) is None, 5)
    third = await cluster_of(b, api, "grace")
    (kept,) = records(kube, DASK_NS)
    assert third["metadata"]["ownerReferences"][0]["uid"] == kept["metadata"]["uid"]
    gc_settled(kube)
    assert kube.get("daskclusters", third["metadata"]["name"], DASK_NS) is not None
    await b.server_forgotten("grace", "/")  # the hub's stop hook
    kube.wait_for(lambda: kube.get("daskclusters", third["metadata"]["name"], DASK_NS) is None, 5)
    kube.delete("pods", "jupyter-grace", HUB_NS, grace=0)


async def test_clusters_beside_the_servers_belong_to_the_servers_pod(kube, api):
    """One namespace for all (an earlier layout): the pod owns the record and the
    cluster, and Kubernetes deletes both with it, gateway or not."""
    b = backend(api, HUB_NS)
    pod = server_pod(kube, "jupyter-hedy", HUB_NS)
    await report(b, "hedy", "jupyter-hedy", HUB_NS)
    (record,) = records(kube, HUB_NS)
    owner = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "jupyter-hedy",
        "uid": pod["metadata"]["uid"],
    }
    assert record["metadata"]["ownerReferences"] == [owner]
    made = await cluster_of(b, api, "hedy")
    assert made["metadata"]["ownerReferences"] == [owner]
    kube.delete("pods", "jupyter-hedy", HUB_NS, grace=0)
    kube.wait_for(
        lambda: (
            kube.get("daskclusters", made["metadata"]["name"], HUB_NS) is None
            and not records(kube, HUB_NS)
        ),
        5,
        what="the cluster and the record deleted with the pod",
    )


async def test_the_gateway_lists_and_watches_daskclusters_in_the_clusters_namespace_only(kube, api):
    """Upstream's informer asks for every namespace's DaskClusters; the backend's client
    asks its clusters' namespace (so its grants on them are a Role there)."""
    b = backend(api, DASK_NS)
    b.custom_client = client.CustomObjectsApi(api)  # as KubeBackend.setup sets it
    custom = client.CustomObjectsApi(api)
    for namespace in (HUB_NS, DASK_NS):
        obj = {"metadata": {"name": f"in-{namespace}"}, "spec": {"username": "x"}}
        await custom.create_namespaced_custom_object(G, V, namespace, "daskclusters", obj)
    seen = kube.call(lambda: len(kube.api.requests))
    listed = await b.custom_client.list_cluster_custom_object(G, V, "daskclusters")
    assert [o["metadata"]["name"] for o in listed["items"]] == [f"in-{DASK_NS}"]
    response = await b.custom_client.list_cluster_custom_object(
        G, V, "daskclusters", watch=True, timeout_seconds=1, _preload_content=False
    )
    response.release()
    paths = [p for _, p in kube.call(lambda: kube.api.requests[seen:])]
    assert paths and all(f"/namespaces/{DASK_NS}/daskclusters" in p for p in paths), paths
