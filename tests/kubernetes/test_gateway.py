"""Dask Gateway on the fake cluster: the real dask-gateway-server with pangeohub's
Kubernetes backend and dask-gateway's own controller, each a pod of the chart's
Deployments configured from deploy/dask-gateway-values.yaml the way the chart renders
it (tests/kubernetes/chart.py), with the real hub spawning users' pods (KubeSpawner).

Traefik cannot run here: its routes (the IngressRoutes the chart and the controller
write) are served by dask-gateway's own dask-gateway-proxy, configured from those
objects (tests/k8s_fake/traefik.py). Schedulers and workers are real dask processes in
fake pods, on the user's server image. As in deploy/, the chart's release and its
clusters run in a namespace of their own (``DASK_NS``), beside the hub's (``NS``: the hub,
the servers), and the stand-in watches only the namespaces the values' traefik arguments
name, as traefik does.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import requests
import yaml
from dask_gateway import Gateway, GatewayClusterError
from dask_gateway.auth import JupyterHubAuth

from ..dask_clients import close, new_gateway, shutdown
from ..gateway.attacks import forged_heartbeat
from ..hubprocess import HubProcess, free_port, wait_for_http
from ..k8s_fake import FakeKube, default_images
from ..k8s_fake.crds import DASK_GATEWAY_CRDS
from ..k8s_fake.kubelet import NODE
from ..k8s_fake.traefik import TraefikStandIn
from .chart import Chart
from .test_e2e import hub_config

pytestmark = pytest.mark.e2e

NS = "jhub"  # the hub's namespace: the hub, its Secret, the servers
DASK_NS = "jhub-dask"  # the chart's release and its clusters' (gateway.backend.namespace)
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCS = DEPLOY.parent / "docs" / "dask-gateway.md"
SERVER_IMAGE = "pangeo/base-notebook:2024.01.01"
# Test-sized bounds and limits, as a second values file (helm -f values -f test-values).
TEST_VALUES = {
    "gateway": {
        "extraConfig": {
            "zz-test": textwrap.dedent(
                """
                c.GatewayPolicy.worker_memory = {"min": "256M", "max": "2G", "default": "512M"}
                c.GatewayPolicy.user_limits = {
                    "clusters": 2, "workers": 3, "cores": 8, "memory": "8G",
                }
                c.GatewayPolicy.image_allowlist = [
                    "pangeo/ml-notebook:2024.01.01", "pangeo/not-pushed-yet:2024.01.01",
                ]
                c.PangeoKubeBackend.orphan_check_period = 1
                c.PangeoKubeBackend.image_pull_timeout = 1
                c.PangeoKubeBackend.scheduling_timeout = 1
                c.PangeoKubeBackend.k8s_api_timeout = 2
                # In a real pod the service account's namespace file gives this default.
                c.PangeoKubeBackend.gateway_namespace = "jhub-dask"
                """
            )
        },
        "backend": {
            "scheduler": {"memory": {"request": "256M", "limit": "256M"}},
            "namespace": DASK_NS,
        },
    },
    "controller": {"backoffMaxDelay": 2},
}


def docs_hub_config(token: str, web_port: int, tcp_port: int) -> str:
    """The hub settings of docs/dask-gateway.md's Kubernetes section, with this test's
    addresses for traefik's (the stand-in's) and the token."""
    section = DOCS.read_text().split("### Kubernetes\n", 1)[1]
    block = section.split("```python\n", 1)[1].split("```", 1)[0]
    block = (
        block.replace("<the gateway's token>", token)
        .replace("traefik-dask-gateway.<namespace>:8786", f"127.0.0.1:{tcp_port}")
        .replace("http://traefik-dask-gateway.<namespace>", f"http://127.0.0.1:{web_port}")
    )
    assert "<" not in block, block
    return "\n" + block


class Stack:
    """The fake cluster, the hub, the chart's gateway and controller, the proxy."""

    def __init__(self, kube: FakeKube, hub: HubProcess, proxy: TraefikStandIn, chart: Chart):
        self.kube, self.hub, self.proxy, self.chart = kube, hub, proxy, chart
        self.base_values = chart.sources
        self.address = f"http://127.0.0.1:{proxy.web_port}/services/dask-gateway"
        self.proxy_address = f"gateway://127.0.0.1:{proxy.tcp_port}"
        self.sessions: dict[str, requests.Session] = {}

    def session(self, user: str) -> requests.Session:
        if user not in self.sessions:
            self.sessions[user] = self.hub.login(user)
        return self.sessions[user]

    def gateway(self, user: str) -> Gateway:
        """A client from outside the cluster, with a hub API token of ``user``."""
        response = self.hub.api(self.session(user), "post", f"/users/{user}/tokens", json={})
        auth = JupyterHubAuth(response.json()["token"])
        return new_gateway(self.address, proxy_address=self.proxy_address, auth=auth)

    def start_server(self, user: str) -> dict:
        """Start ``user``'s default server; the environment of its pod's process."""
        response = self.hub.api(self.session(user), "post", f"/users/{user}/server", json={})
        assert response.status_code in (201, 202), response.text
        self.hub.wait_for_server(self.session(user), user, timeout=90)
        return self.pod_env(f"jupyter-{user}")

    def pod_env(self, pod: str) -> dict[str, str]:
        procs = self.kube.call(lambda: list(self.kube.kubelet.procs.get((NS, pod), [])))
        assert procs, f"no process for pod {pod}"
        items = Path(f"/proc/{procs[0].pid}/environ").read_bytes().split(b"\0")
        return dict(i.decode().split("=", 1) for i in items if b"=" in i)

    def run_in_pod(self, pod: str, code: str, timeout: float = 180):
        """Run ``code`` as a notebook in ``pod`` would: its environment, its address, the
        cluster's DNS; its last stdout line parsed as JSON."""
        env = {**self.pod_env(pod), "TEST_HUB_URL": self.hub.url}
        result = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, result.stderr[-4000:] + self.logs("gateway")
        return json.loads(result.stdout.strip().splitlines()[-1])

    def pods(self, component: str, cluster: str | None = None) -> list[dict]:
        """The chart's pods (``gateway``, ``controller``) or a cluster's."""
        selector = f"app.kubernetes.io/component={component}"
        if cluster:
            selector += f",gateway.dask.org/cluster={cluster.split('.', 1)[-1]}"
        return self.kube.list("pods", DASK_NS, selector)

    def logs(self, component: str) -> str:
        out = []
        for pod in self.pods(component):
            meta = pod["metadata"]
            text = self.kube.call(self.kube.kubelet.logs, meta["namespace"], meta["name"])
            out.append(f"\n--- {pod['metadata']['name']}\n" + text[-3000:])
        return "".join(out)

    def wait_gone(self, cluster: str, timeout: float = 30) -> None:
        """Its pods gone; its DaskCluster gone or kept as a Stopped/Failed record."""
        name = cluster.split(".", 1)[-1]

        def stopped():
            obj = self.kube.get("daskclusters", name, DASK_NS)
            return obj is None or obj.get("status", {}).get("phase") in ("Stopped", "Failed")

        self.kube.wait_for(
            lambda: (
                stopped()
                and not self.pods("dask-scheduler", cluster)
                and not self.pods("dask-worker", cluster)
            ),
            timeout,
            what=f"cluster {cluster} and its pods gone",
        )

    def wait_ready(self, timeout: float = 60) -> None:
        if not wait_for_http(f"{self.address}/api/health", timeout):
            raise AssertionError(
                "the gateway did not answer" + self.logs("gateway") + self.logs("controller")
            )

    def restart_gateway(self, values: dict | None = None) -> None:
        """Replace the gateway's pod as a rollout of the Deployment does; with
        ``values`` (over the stack's own), its configuration too."""
        if values is not None:
            self.chart = Chart(*self.base_values, values, namespace=DASK_NS)
            data = {"dask_gateway_config.py": self.chart.gateway_config()}
            self.kube.call(
                self.kube.store.update,
                "configmaps",
                DASK_NS,
                self.chart.api_name,
                lambda o: o.update(data=data),
            )
        for old in self.pods("gateway"):
            self.kube.delete("pods", old["metadata"]["name"], DASK_NS, grace=0)
        self.kube.wait_for(lambda: not self.pods("gateway"), 20, what="old gateway gone")
        self.start_component("gateway")
        self.wait_ready()

    def start_component(self, component: str) -> dict:
        pod = self.chart.gateway_pod if component == "gateway" else self.chart.controller_pod
        made = self.kube.create(
            "pods", pod([{"name": "KUBECONFIG", "value": str(self.kube.kubeconfig)}]), DASK_NS
        )
        return made


@contextlib.contextmanager
def running_stack(workdir: Path, *extra_values: dict):
    """The whole stack (``TEST_VALUES`` and ``extra_values`` over the deploy values)."""
    web_port, tcp_port = free_port(), free_port()
    token = uuid.uuid4().hex
    values = [DEPLOY / "dask-gateway-values.yaml", TEST_VALUES, *extra_values]
    chart_values = yaml.safe_load(values[0].read_text())["gateway"]["image"]
    images = default_images(workdir)
    # The gateway image of the values (deploy/Dockerfile.gateway: dask-gateway-server and
    # pangeohub) is this venv, as the notebook images are, with this checkout's pangeohub
    # (the venv's may be another checkout's).
    images[f"{chart_values['name']}:{chart_values['tag']}"] = {
        "entrypoint": [],
        "cmd": [],
        "env": {**images[SERVER_IMAGE]["env"], "PYTHONPATH": str(DEPLOY.parent)},
    }
    with FakeKube(namespace=NS, images=images, cpu="32", memory="128Gi", backoff=0.2) as kube:
        for definition in DASK_GATEWAY_CRDS:
            kube.define(definition)
        kube.create("namespaces", {"metadata": {"name": DASK_NS}})
        hub = HubProcess(
            workdir / "hub",
            extra_config=hub_config(kube) + docs_hub_config(token, web_port, tcp_port),
            env={"KUBECONFIG": str(kube.kubeconfig)},
        )
        hub_api = {"gateway": {"auth": {"jupyterhub": {"apiUrl": ""}}}}
        hub_api["gateway"]["auth"]["jupyterhub"]["apiUrl"] = (
            f"http://127.0.0.1:{hub.hub_port}/hub/api"
        )
        chart = Chart(*values, hub_api, namespace=DASK_NS)
        for plural, obj in chart.config_objects(token) + chart.routing_objects():
            kube.create(plural, obj, DASK_NS)
        # traefik's provider arguments of the values, with the namespace of this test (the
        # entrypoint's forwardAuth is tests/gateway/test_dashboards.py's)
        arguments = [
            argument.replace("=pangeo-dask", f"={DASK_NS}")
            for argument in chart.values["traefik"]["additionalArguments"]
            if argument.startswith("--providers.")
        ]
        assert f"--providers.kubernetescrd.namespaces={DASK_NS}" in arguments
        try:
            hub.start(timeout=120)  # a loaded machine starts it slowly
            with TraefikStandIn(kube, web_port, tcp_port, arguments=arguments) as proxy:
                stack = Stack(kube, hub, proxy, chart)
                stack.start_component("controller")
                stack.start_component("gateway")
                stack.wait_ready()
                yield stack
                assert proxy.errors == []
        finally:
            hub.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_stack(tmp_path_factory.mktemp("gateway-k8s")) as running:
        yield running


ZERO_CONFIG = """
    import json, os, urllib.error, urllib.request
    from dask_gateway import Gateway, GatewayCluster

    cluster = GatewayCluster()
    cluster.scale(2)
    client = cluster.get_client()
    client.wait_for_workers(2, timeout=120)
    total = client.submit(sum, client.map(lambda x: x * x, range(100))).result()
    server_token = os.environ["JUPYTERHUB_API_TOKEN"]

    def worker():
        token = os.environ["JUPYTERHUB_API_TOKEN"]
        url = os.environ["PANGEO_SCRATCH_SERVICE_URL"] + "credentials"
        request = urllib.request.Request(url, headers={"Authorization": "token " + token})
        with urllib.request.urlopen(request, timeout=10) as response:
            status = response.status
        return [os.environ["JUPYTER_IMAGE_SPEC"], os.environ["PANGEO_SCRATCH"], status,
                token == server_token]

    seen = client.run(worker)
    second = Gateway()
    listed = [c.name for c in second.list_clusters()]
    other = second.connect(cluster.name)
    other_total = other.get_client().submit(sum, [1, 2, 3]).result()
    try:
        with urllib.request.urlopen(os.environ["TEST_HUB_URL"] + cluster.dashboard_link) as page:
            dashboard_page = [page.status, b"Dask" in page.read()]
    except urllib.error.HTTPError as error:
        dashboard_page = [error.code, False]
    print(json.dumps({
        "total": total, "seen": [list(v) for v in seen.values()], "listed": listed,
        "name": cluster.name, "other_total": other_total, "dashboard": cluster.dashboard_link,
        "dashboard_page": dashboard_page,
    }))
    cluster.close(shutdown=False)  # the test looks at its pods first, then stops it
"""


def server_record_owner(stack, pod: str) -> list[dict]:
    """The ownerReferences of a cluster started from the server of ``pod``: its record,
    a Secret in the clusters' namespace owned by nothing, naming the pod and its uid."""
    records = stack.kube.list("secrets", DASK_NS, "pangeohub.org/server-record=true")
    uid = stack.kube.get("pods", pod)["metadata"]["uid"]
    (record,) = [
        r for r in records if json.loads(base64.b64decode(r["data"]["record.json"]))["pod"] == pod
    ]
    data = json.loads(base64.b64decode(record["data"]["record.json"]))
    assert (data["namespace"], data["uid"]) == (NS, uid)
    assert "ownerReferences" not in record["metadata"]
    meta = record["metadata"]
    return [{"apiVersion": "v1", "kind": "Secret", "name": meta["name"], "uid": meta["uid"]}]


def test_zero_configuration_cluster_from_a_users_pod(stack):
    env = stack.start_server("grace")
    assert env["DASK_GATEWAY__ADDRESS"] == stack.address
    out = stack.run_in_pod("jupyter-grace", ZERO_CONFIG)
    assert out["total"] == sum(x * x for x in range(100))
    # Workers run the server's image, see its scratch space, and hold a token of their own
    # that the scratch service accepts.
    assert out["seen"] == [[SERVER_IMAGE, env["PANGEO_SCRATCH"], 200, False]] * 2
    assert out["listed"] == [out["name"]] and out["other_total"] == 6
    workers = stack.pods("dask-worker", out["name"])
    assert [p["spec"]["containers"][0]["image"] for p in workers] == [SERVER_IMAGE] * 2
    assert out["dashboard"] == f"/services/dask-gateway/clusters/{out['name']}/status"
    assert out["dashboard_page"] == [200, True], "the dashboard opens through the hub"
    # The cluster runs in the clusters' namespace and belongs to the record of grace's
    # server there (the server's pod is in the hub's namespace: owners share the
    # dependent's), which names that pod.
    assert out["name"].split(".", 1)[0] == DASK_NS
    obj = stack.kube.get("daskclusters", out["name"].split(".", 1)[1], DASK_NS)
    assert obj["metadata"]["ownerReferences"] == server_record_owner(stack, "jupyter-grace")
    # Its own network policies, owned by its DaskCluster (test_least_privilege.py
    # evaluates what they admit).
    name = out["name"].split(".", 1)[1]
    policies = stack.kube.list("networkpolicies", DASK_NS, f"gateway.dask.org/cluster={name}")
    assert sorted(p["metadata"]["name"] for p in policies) == [
        f"dask-scheduler-{name}",
        f"dask-worker-{name}",
    ]
    owner = [{"apiVersion": "gateway.dask.org/v1alpha1", "kind": "DaskCluster", "name": name}]
    for policy in policies:
        (ref,) = policy["metadata"]["ownerReferences"]
        assert ref["uid"] == obj["metadata"]["uid"] and {k: ref[k] for k in owner[0]} == owner[0]
    grace = stack.gateway("grace")
    grace.stop_cluster(out["name"])
    close(grace)
    stack.wait_gone(out["name"])


def test_a_forged_heartbeat_cannot_lift_the_worker_limit(stack):
    """Issue 13: the user's scheduler token posts a heartbeat counting -10 workers; the
    limit still counts the three worker pods the cluster runs."""
    gateway = stack.gateway("katherine")
    first = gateway.new_cluster()
    second = None
    try:
        first.scale(3)
        client = first.get_client()
        client.wait_for_workers(3, timeout=120)
        assert client.run_on_scheduler(forged_heartbeat(-10)) == 200
        second = gateway.new_cluster()
        with pytest.raises(Exception, match="past your limit of 3 workers") as refused:
            second.scale(1)
        assert "uses 3 workers" in str(refused.value)
        assert len(stack.pods("dask-worker", first.name)) == 3
        with pytest.raises(Exception, match="past your limit of 3 workers"):
            first.scale(4)
    finally:
        for cluster in (first, second):
            if cluster is not None:
                shutdown(cluster)
        close(gateway)


def test_bounds_image_environment_and_limits_hold_with_the_same_messages(stack):
    grace = stack.gateway("grace")  # pangeo-data:climate: 4-core workers allowed
    katherine = stack.gateway("katherine")
    clusters = []
    try:
        assert grace.cluster_options()._fields["worker_cores"].max == 4
        assert katherine.cluster_options()._fields["worker_cores"].max == 2
        refusals = [
            ({"worker_cores": 3}, "worker_cores=3 is above your maximum of 2; ask a hub admin"),
            ({"worker_memory": 4}, "worker_memory=4 GiB is above your maximum of 2 GiB"),
            ({"idle_timeout": 0}, "idle_timeout=0 minutes is below the minimum of 5 minutes"),
            ({"idle_timeout": 600}, "idle_timeout=600 minutes is above your maximum of 60"),
            ({"image": "evil/miner:1"}, "image 'evil/miner:1' is not allowed. Leave it unset"),
            ({"environment": {"PANGEO_SCRATCH": "s3://x"}}, "may not set PANGEO_SCRATCH"),
        ]
        for options, message in refusals:
            with pytest.raises(ValueError, match=message):
                katherine.submit(**options)
        assert katherine.list_clusters() == [], "a refused request left a cluster"
        assert stack.kube.list("daskclusters", DASK_NS, "gateway.dask.org/instance") is not None
        clusters = [katherine.new_cluster(), katherine.new_cluster()]
        with pytest.raises(
            ValueError, match="You may run at most 2 Dask clusters at once"
        ) as third:
            katherine.submit()
        assert "Your 2 running clusters use" in str(third.value)
        with pytest.raises(Exception, match="past your limit of 3 workers"):
            clusters[0].scale(4)
    finally:
        for cluster in clusters:
            shutdown(cluster)
        close(grace)
        close(katherine)


CLUSTERS = rf"^/apis/gateway\.dask\.org/v1alpha1/namespaces/{DASK_NS}/daskclusters$"


@pytest.mark.parametrize(
    "status, words",
    [
        (403, "the cluster refused the gateway permission to create it"),
        (500, "the cluster answered with an error (HTTP 500). Please try again"),
    ],
)
def test_the_api_failing_gives_a_clear_message_and_leaves_nothing(stack, status, words):
    gateway = stack.gateway("katherine")
    before = [o["metadata"]["name"] for o in stack.kube.list("daskclusters", DASK_NS)]
    stack.kube.fault(CLUSTERS, status, "POST", times=1)
    try:
        with pytest.raises(ValueError) as refused:
            gateway.submit()
        message = str(refused.value)
        assert words in message and "Traceback" not in message
        assert [o["metadata"]["name"] for o in stack.kube.list("daskclusters", DASK_NS)] == before
        assert gateway.list_clusters() == []
        cluster = gateway.new_cluster()  # the fault is gone: the next attempt works
        shutdown(cluster)
    finally:
        stack.kube.clear_faults()
        close(gateway)


LEAVE_RUNNING = """
    import json
    from dask_gateway import GatewayCluster

    cluster = GatewayCluster(shutdown_on_close=False)
    cluster.scale(1)
    cluster.get_client().wait_for_workers(1, timeout=120)
    print(json.dumps({"name": cluster.name}))
"""


def test_clusters_stop_with_their_server_pod_after_a_gateway_restart_with_the_hub_down(
    stack,
):
    """A cluster's owner (its server's record, in the clusters' namespace) survives the
    controller's writes and a gateway restart; the restarted gateway still knows the
    server (the record), so a cluster started after the restart is owned too and gets the
    workers' environment. Node loss while the hub is down: the gateway sees the server's
    pod gone and deletes the record, and Kubernetes' garbage collector removes both
    clusters, their schedulers and workers with it (dask-gateway#451)."""
    if stack.kube.get("pods", "jupyter-grace") is None:
        stack.start_server("grace")
    first = stack.run_in_pod("jupyter-grace", LEAVE_RUNNING)["name"]
    owner = server_record_owner(stack, "jupyter-grace")
    stack.restart_gateway()
    second = stack.run_in_pod("jupyter-grace", LEAVE_RUNNING)["name"]
    names = [name.split(".", 1)[1] for name in (first, second)]
    for name in names:
        obj = stack.kube.get("daskclusters", name, DASK_NS)
        assert obj["status"]["phase"] == "Running", "the controller has written its status"
        assert obj["metadata"]["ownerReferences"] == owner
    environment = stack.kube.get("daskclusters", names[1], DASK_NS)["spec"]["config"]
    environment = environment["environment"]
    assert environment["PANGEO_SCRATCH"] == stack.pod_env("jupyter-grace")["PANGEO_SCRATCH"]
    assert server_record_owner(stack, "jupyter-grace") == owner, "one record, kept"
    assert not stack.kube.list("secrets", NS, "pangeohub.org/server-record=true")
    os.killpg(stack.hub.proc.pid, signal.SIGSTOP)
    try:
        stack.kube.delete("pods", "jupyter-grace", grace=0)
        stack.kube.wait_for(
            lambda: (
                all(stack.kube.get("daskclusters", name, DASK_NS) is None for name in names)
                and not any(stack.pods("dask-scheduler", n) for n in (first, second))
                and not any(stack.pods("dask-worker", n) for n in (first, second))
                and not stack.kube.list("secrets", DASK_NS, "pangeohub.org/server-record=true")
            ),
            30,
            what="the server's clusters and record removed once its pod is gone",
        )
    finally:
        os.killpg(stack.hub.proc.pid, signal.SIGCONT)


def test_clusters_of_a_server_that_is_not_running_are_reaped(stack):
    """A cluster tagged with a server the hub does not run (so no pod owns it, as when
    its server's pod could not be read) is stopped by the gateway's orphan check."""
    gateway = stack.gateway("katherine")  # katherine runs no server
    try:
        name = gateway.submit(server="/")
        stack.wait_gone(name, timeout=30)
        assert gateway.list_clusters() == []
    finally:
        close(gateway)


def test_a_gateway_restart_keeps_running_clusters(stack):
    gateway = stack.gateway("katherine")
    cluster = gateway.new_cluster()
    try:
        cluster.scale(1)
        cluster.get_client().wait_for_workers(1, timeout=120)
        (old,) = stack.pods("gateway")
        stack.restart_gateway()  # the Deployment's next pod
        assert stack.pods("gateway")[0]["metadata"]["uid"] != old["metadata"]["uid"]
        again = stack.gateway("katherine")
        assert [c.name for c in again.list_clusters()] == [cluster.name]
        connected = again.connect(cluster.name)
        assert connected.get_client().submit(sum, [1, 2, 3]).result() == 6
        close(again)
    finally:
        shutdown(cluster)
        close(gateway)


# --- pods that cannot start, an API too slow or gone: what the user reads -----------

NOT_PUSHED = "pangeo/not-pushed-yet:2024.01.01"  # allowed, not in the fake registry


def cluster_objects(stack) -> set[str]:
    return {o["metadata"]["name"] for o in stack.kube.list("daskclusters", DASK_NS)}


def pods_of_image(stack, image: str) -> list[dict]:
    pods = stack.kube.list("pods", DASK_NS)
    return [p for p in pods if p["spec"]["containers"][0]["image"] == image]


@contextlib.contextmanager
def node_full(stack):
    """The node has no CPU left for a new pod (as when every node is busy)."""

    def set_cpu(cpu: str | None) -> str:
        def change(node):
            change.old = node["status"]["allocatable"]["cpu"]
            node["status"]["allocatable"]["cpu"] = cpu or change.old

        stack.kube.store.update("nodes", "", NODE, change)
        stack.kube.kubelet.capacity_changed.set()  # pending pods look again
        return change.old

    old = stack.kube.call(set_cpu, "1m")
    try:
        yield
    finally:
        stack.kube.call(set_cpu, old)


def test_an_image_that_cannot_be_pulled_is_reported_and_nothing_is_left(stack):
    """ErrImagePull / ImagePullBackOff on the scheduler: GatewayCluster() says so, the
    DaskCluster and its pods are deleted, and once the image is pushed it starts."""
    gateway = stack.gateway("katherine")
    before = cluster_objects(stack)
    try:
        with pytest.raises(GatewayClusterError) as failed:
            gateway.new_cluster(image=NOT_PUSHED)
        assert str(failed.value) == (
            f"Your Dask cluster could not be started: its image '{NOT_PUSHED}' could not be "
            "downloaded. Leave image unset to use your server's image, choose another one, "
            "or tell a hub admin."
        )
        stack.kube.wait_for(
            lambda: cluster_objects(stack) == before and not pods_of_image(stack, NOT_PUSHED),
            20,
            what="the failed cluster and its scheduler gone",
        )
        assert gateway.list_clusters() == []
        images = stack.kube.kubelet.images
        stack.kube.call(images.__setitem__, NOT_PUSHED, dict(images[SERVER_IMAGE]))
        cluster = gateway.new_cluster(image=NOT_PUSHED)  # pushed: the next attempt works
        assert stack.pods("dask-scheduler", cluster.name)[0]["status"]["phase"] == "Running"
        shutdown(cluster)
    finally:
        stack.kube.call(stack.kube.kubelet.images.pop, NOT_PUSHED, None)
        close(gateway)


def test_no_room_for_the_scheduler_is_reported_and_nothing_is_left(stack):
    gateway = stack.gateway("katherine")
    before = cluster_objects(stack)
    try:
        with node_full(stack), pytest.raises(GatewayClusterError) as failed:
            gateway.new_cluster()
        assert str(failed.value) == (
            "Your Dask cluster could not be started: the Kubernetes cluster has no room for "
            "its scheduler right now (0/1 nodes are available: 1 Insufficient cpu). Please "
            "try again later; if this keeps happening, tell a hub admin."
        )
        stack.kube.wait_for(
            lambda: cluster_objects(stack) == before, 20, what="the failed cluster gone"
        )
        cluster = gateway.new_cluster()  # room again: the next attempt works
        shutdown(cluster)
    finally:
        close(gateway)


def test_workers_with_no_room_are_removed_and_scale_says_why(stack):
    """Worker pods Unschedulable past scheduling_timeout are deleted, the cluster is held
    at the workers it has (dask-gateway's controller would not add any for 10 minutes),
    a scale() asking for more says why, and a new cluster gets workers once there is
    room."""
    gateway = stack.gateway("katherine")
    cluster = gateway.new_cluster()
    again = None
    try:
        with node_full(stack):
            cluster.scale(2)
            stack.kube.wait_for(
                lambda: stack.pods("dask-worker", cluster.name), 30, what="worker pods made"
            )
            stack.kube.wait_for(
                lambda: not stack.pods("dask-worker", cluster.name),
                30,
                what="the workers that found no room removed",
            )
            obj = stack.kube.get("daskclusters", cluster.name.split(".", 1)[1], DASK_NS)
            assert obj["spec"]["replicas"] == 0, "the gateway asks for no more of them"
        with pytest.raises(GatewayClusterError) as refused:
            cluster.scale(1)
        # 1 or 2: the controller may not have made the second pod when the first is given up
        assert re.fullmatch(
            r"(1 worker|2 workers) of your cluster could not start and (was|were) removed: "
            r"the Kubernetes cluster has no room for (it|them) \(0/1 nodes are available: 1 "
            r"Insufficient cpu\)\. The cluster keeps 0 and cannot add workers for 10 "
            r"minutes\. Ask for fewer or smaller workers \(worker_cores, worker_memory\), or "
            r"start a new cluster later\.",
            str(refused.value),
        ), str(refused.value)
        assert not stack.pods("dask-worker", cluster.name)
        shutdown(cluster)
        again = gateway.new_cluster()  # room again: a new cluster gets its workers
        again.scale(1)
        try:
            again.get_client().wait_for_workers(1, timeout=60)
        except TimeoutError as error:
            raise AssertionError(stack.logs("gateway") + stack.logs("controller")) from error
    finally:
        for c in (cluster, again):
            if c is not None:
                shutdown(c)
        close(gateway)


def test_an_api_too_slow_gives_a_clear_message_and_its_late_cluster_is_deleted(stack):
    """The API answers the create after the gateway's k8s_api_timeout (2 s here): the
    user is told, and the DaskCluster the API makes later is deleted when it appears."""
    gateway = stack.gateway("katherine")
    before = cluster_objects(stack)
    seen = stack.kube.call(lambda: len(stack.kube.api.requests))
    stack.kube.fault(CLUSTERS, None, "POST", delay=3, late=True, times=1)
    try:
        with pytest.raises(ValueError) as refused:
            gateway.submit()
        assert str(refused.value) == (
            "Your Dask cluster could not be created: the Kubernetes cluster did not answer "
            "within 2 seconds. Please try again in a minute; if this keeps happening, tell "
            "a hub admin."
        )
        assert gateway.list_clusters() == []

        def late_cluster_deleted():
            requests = stack.kube.call(lambda: stack.kube.api.requests[seen:])
            return any(m == "DELETE" and "/daskclusters/" in p for m, p in requests)

        stack.kube.wait_for(late_cluster_deleted, 20, what="the late cluster deleted")
        stack.kube.wait_for(lambda: cluster_objects(stack) == before, 20, what="nothing left")
        cluster = gateway.new_cluster()  # the API is quick again: the next attempt works
        shutdown(cluster)
    finally:
        stack.kube.clear_faults()
        close(gateway)


def test_an_unreachable_api_gives_a_clear_message_and_the_next_attempt_works(stack):
    gateway = stack.gateway("katherine")
    before = cluster_objects(stack)
    stack.kube.api_down()
    try:
        with pytest.raises(ValueError) as refused:
            gateway.submit()
    finally:
        stack.kube.api_up()
    try:
        assert str(refused.value) == (
            "Your Dask cluster could not be created: the gateway cannot reach the Kubernetes "
            "cluster right now. Please try again in a minute; if this keeps happening, tell "
            "a hub admin."
        )
        assert cluster_objects(stack) == before
        cluster = gateway.new_cluster()
        shutdown(cluster)
    finally:
        close(gateway)
