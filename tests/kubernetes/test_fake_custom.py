"""The fake API's custom resources, endpoints, cluster DNS and pod volumes, driven by the
real kubernetes_asyncio client the way dask-gateway's backend and controller use them."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.rest import ApiException

from ..k8s_fake import FakeKube
from ..k8s_fake.crds import DASK_GATEWAY_CRDS

G, V, NS = "gateway.dask.org", "v1alpha1", "jhub"


@pytest.fixture(scope="module")
def kube():
    with FakeKube(namespace=NS, backoff=0.2) as fake:
        for definition in DASK_GATEWAY_CRDS:
            fake.define(definition)
        yield fake


@pytest.fixture
async def api(kube):
    c = client.ApiClient(client.Configuration(host=kube.url))
    yield client.CustomObjectsApi(c), client.CoreV1Api(c)
    await c.close()


def cluster(name: str, **labels) -> dict:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "DaskCluster",
        "metadata": {"name": name, "labels": {"app": "test", **labels}},
        "spec": {"username": "ada", "replicas": 0},
        "status": {"phase": "Forged"},
    }


async def test_custom_objects_create_patch_status_and_list(api):
    custom, _ = api
    made = await custom.create_namespaced_custom_object(G, V, NS, "daskclusters", cluster("c1"))
    assert made["kind"] == "DaskCluster" and made["apiVersion"] == f"{G}/{V}"
    assert "status" not in made  # status is a subresource: create ignores it
    patched = await custom.patch_namespaced_custom_object(
        G, V, NS, "daskclusters", "c1", [{"op": "add", "path": "/spec/replicas", "value": 3}]
    )
    assert patched["spec"]["replicas"] == 3
    status = await custom.patch_namespaced_custom_object_status(
        G,
        V,
        NS,
        "daskclusters",
        "c1",
        [{"op": "add", "path": "/status", "value": {"phase": "Running"}}],
    )
    assert status["status"] == {"phase": "Running"} and status["spec"]["replicas"] == 3
    # a write to the object cannot change its status
    again = await custom.patch_namespaced_custom_object(
        G, V, NS, "daskclusters", "c1", [{"op": "add", "path": "/status", "value": {"phase": "X"}}]
    )
    assert again["status"] == {"phase": "Running"}
    listed = await custom.list_cluster_custom_object(
        G, V, "daskclusters", label_selector="app=test"
    )
    assert [o["metadata"]["name"] for o in listed["items"]] == ["c1"]
    with pytest.raises(ApiException) as missing:
        await custom.get_namespaced_custom_object(G, "v9", NS, "daskclusters", "c1")
    assert missing.value.status == 404
    with pytest.raises(ApiException) as exists:
        await custom.create_namespaced_custom_object(G, V, NS, "daskclusters", cluster("c1"))
    assert exists.value.status == 409
    await custom.delete_namespaced_custom_object(G, V, NS, "daskclusters", "c1")


async def test_watch_sees_custom_objects_change(api):
    custom, _ = api
    listed = await custom.list_cluster_custom_object(G, V, "daskclusters")
    rv = listed["metadata"]["resourceVersion"]
    await custom.create_namespaced_custom_object(G, V, NS, "daskclusters", cluster("w1"))
    await custom.delete_namespaced_custom_object(G, V, NS, "daskclusters", "w1")
    resp = await custom.list_cluster_custom_object(
        G,
        V,
        "daskclusters",
        watch=True,
        resource_version=rv,
        timeout_seconds=1,
        _preload_content=False,
    )
    events = []
    async with resp:
        while line := await resp.content.readline():
            events.append(json.loads(line))
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w1"),
        ("DELETED", "w1"),
    ]


async def test_finalizers_hold_deletion_until_removed(api, kube):
    custom, _ = api
    obj = cluster("f1")
    obj["metadata"]["finalizers"] = ["example.org/cleanup"]
    await custom.create_namespaced_custom_object(G, V, NS, "daskclusters", obj)
    await custom.delete_namespaced_custom_object(G, V, NS, "daskclusters", "f1")
    held = await custom.get_namespaced_custom_object(G, V, NS, "daskclusters", "f1")
    assert held["metadata"]["deletionTimestamp"]
    await custom.patch_namespaced_custom_object(
        G, V, NS, "daskclusters", "f1", [{"op": "remove", "path": "/metadata/finalizers"}]
    )
    assert kube.get("daskclusters", "f1") is None


async def test_deleting_an_owner_pod_deletes_its_custom_objects(api, kube):
    custom, core = api
    pod = kube.create(
        "pods",
        {
            "metadata": {"name": "owner"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "pangeo/base-notebook:2024.01.01",
                        "command": ["sleep", "60"],
                    }
                ]
            },
        },
    )
    obj = cluster("owned")
    obj["metadata"]["ownerReferences"] = [
        {"apiVersion": "v1", "kind": "Pod", "name": "owner", "uid": pod["metadata"]["uid"]}
    ]
    await custom.create_namespaced_custom_object(G, V, NS, "daskclusters", obj)
    await core.delete_namespaced_pod("owner", NS, grace_period_seconds=0)
    kube.wait_for(lambda: kube.get("daskclusters", "owned") is None, 10, what="GC")


async def test_endpoints_dns_and_secret_volumes_for_a_pod(api, kube, tmp_path):
    _, core = api
    secret = {
        "metadata": {"name": "creds"},
        "data": {"token": base64.b64encode(b"s3cret").decode()},
    }
    await core.create_namespaced_secret(NS, secret)
    script = (
        "import http.server, os, pathlib\n"
        "assert pathlib.Path(os.environ['TOKEN_FILE']).read_text() == 's3cret'\n"
        "http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, port=8080, bind='')\n"
    )
    pod = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "pangeo/base-notebook:2024.01.01",
                    "command": ["python", "-c", script, "$(POD_NAME)"],
                    "env": [
                        {"name": "TOKEN_FILE", "value": "/etc/creds/token"},
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                    ],
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"port": "http", "path": "/"}},
                    "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds/"}],
                }
            ],
            "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
        },
    }
    await core.create_namespaced_pod(NS, pod)
    service = {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "clusterIP": "None",
            "selector": {"app": "web"},
            "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
        },
    }
    await core.create_namespaced_service(NS, service)

    def ready_endpoints():
        e = kube.get("endpoints", "web")
        return e and e.get("subsets") and e["subsets"][0].get("addresses") and e

    endpoints = await asyncio.to_thread(kube.wait_for, ready_endpoints, 30, what="endpoints")
    assert endpoints["metadata"]["labels"] == {"app": "web"}
    assert endpoints["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    ip = endpoints["subsets"][0]["addresses"][0]["ip"]
    assert ip.startswith("127.") and ip != "127.0.0.1"  # the pod's own address
    # a process outside the pods resolves the service name to the pod
    code = "import urllib.request; print(urllib.request.urlopen('http://web.jhub:8080/').status)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=kube.dns_env(), capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() == "200", out.stderr
    await core.delete_namespaced_service("web", NS)
    await asyncio.to_thread(kube.wait_for, lambda: kube.get("endpoints", "web") is None, 10)
    await core.delete_namespaced_pod("web", NS, grace_period_seconds=0)
