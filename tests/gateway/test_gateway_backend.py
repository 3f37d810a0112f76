"""The per-user limits on paths the end-to-end tests do not reach quickly (adaptive
scaling, a scheduler asking past the limit), and the Kubernetes backend's config."""

from __future__ import annotations

import contextlib

import pytest
from dask_gateway_server.backends.base import Backend, PublicException
from dask_gateway_server.models import Cluster, ClusterStatus, User
from traitlets.config import Config

from pangeohub.gateway.backend import PangeoBackendMixin
from pangeohub.gateway.kubernetes import PangeoKubeBackend

GiB = 1024**3
CONFIG = {"worker_cores": 1, "worker_memory": GiB, "scheduler_cores": 1, "scheduler_memory": GiB}


class RecordingBackend(Backend):
    """dask-gateway-server's Backend interface over a dict: what reached the base class."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.clusters: dict[str, Cluster] = {}
        self.forwarded: list[dict] = []
        self.heartbeats: list[dict] = []

    def add(self, name: str, user: str = "ada") -> Cluster:
        cluster = Cluster(name, user, "token", {}, dict(CONFIG), ClusterStatus.RUNNING)
        self.clusters[name] = cluster
        return cluster

    async def list_clusters(self, username=None, statuses=None):
        return [c for c in self.clusters.values() if c.username == username]

    async def get_cluster(self, cluster_name, wait=False):
        return self.clusters.get(cluster_name)

    async def forward_message_to_scheduler(self, cluster, msg):
        self.forwarded.append(msg)

    async def on_cluster_heartbeat(self, cluster_name, msg):
        self.heartbeats.append(msg)


class LimitedBackend(PangeoBackendMixin, RecordingBackend):
    pass


@contextlib.asynccontextmanager
async def serving(app):
    """``app`` on a loopback port while the block runs; its base URL."""
    from aiohttp import web

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def backend(**limits) -> LimitedBackend:
    config = Config()
    config.GatewayPolicy.user_limits = limits
    return LimitedBackend(config=config)


def heartbeat(count: int) -> dict:
    return {"count": count, "active_workers": [], "closing_workers": [], "closed_workers": []}


async def test_adaptive_maximum_is_capped_at_what_the_limits_leave():
    b = backend(workers=5, cores=0, memory=0, clusters=0)
    first, second = b.add("first"), b.add("second")
    await b.forward_message_to_scheduler(first, {"op": "scale", "count": 3})
    await b.forward_message_to_scheduler(second, {"op": "adapt", "minimum": 0, "maximum": 50})
    assert b.forwarded[-1]["maximum"] == 2
    with pytest.raises(PublicException, match="Adapting with minimum 3 workers would take you"):
        await b.forward_message_to_scheduler(second, {"op": "adapt", "minimum": 3, "maximum": 4})


async def test_a_scheduler_asking_past_the_limit_is_capped():
    b = backend(workers=0, cores=4, memory=0, clusters=0)  # 4 cores: scheduler + 3 workers
    b.add("only")
    await b.on_cluster_heartbeat("only", heartbeat(10))
    assert b.heartbeats[-1]["count"] == 3
    await b.on_cluster_heartbeat("only", heartbeat(2))
    assert b.heartbeats[-1]["count"] == 2


async def test_memory_limit_counts_schedulers_and_workers():
    b = backend(workers=0, cores=0, memory="4G", clusters=0)
    first, second = b.add("first"), b.add("second")
    await b.forward_message_to_scheduler(first, {"op": "scale", "count": 1})  # 2 GiB
    with pytest.raises(PublicException, match="past your limit of 4 GiB") as refused:
        await b.forward_message_to_scheduler(second, {"op": "scale", "count": 2})
    assert "first (1 worker, 2 cores, 2 GiB)" in str(refused.value)


async def test_kubernetes_backend_gets_the_image_and_environment():
    config = Config()
    config.GatewayPolicy.image_allowlist = ["pangeo/ml:1"]
    config.GatewayPolicy.environment = {"PANGEO_SCRATCH": "gs://scratch/{username}/"}

    class NotWatching(PangeoKubeBackend):
        """No cluster watch started (setup): the user has no cluster running."""

        async def list_clusters(self, username=None, statuses=None):
            return []

    b = NotWatching(config=config)
    user = User("ada", ["org:team"])
    _, cluster_config = await b.process_cluster_options(user, {"image": "pangeo/ml:1"})
    assert cluster_config.image == "pangeo/ml:1"
    assert cluster_config.environment["PANGEO_SCRATCH"] == "gs://scratch/ada/"
    assert cluster_config.idle_timeout == 3600
    with pytest.raises(PublicException, match="is not allowed"):
        await b.process_cluster_options(user, {"image": "evil/miner"})


async def test_a_failing_environment_hook_refuses_with_a_clean_message():
    def broken(user):
        raise RuntimeError("secret-ish internal detail")

    config = Config()
    config.GatewayPolicy.environment_hooks = [broken]
    b = LimitedBackend(config=config)
    with pytest.raises(PublicException) as refused:
        await b.process_cluster_options(User("ada"), {})
    assert "could not be prepared" in str(refused.value)
    assert "internal detail" not in str(refused.value)


async def test_a_negative_or_malformed_heartbeat_count_is_taken_as_zero():
    b = backend(workers=5, cores=0, memory=0, clusters=0)
    b.add("only")
    await b.on_cluster_heartbeat("only", heartbeat(-10))
    assert b.heartbeats[-1]["count"] == 0
    await b.on_cluster_heartbeat("only", {**heartbeat(0), "count": "7"})
    assert b.heartbeats[-1]["count"] == 0


async def test_workers_the_backend_runs_count_whatever_the_target_says():
    class Running(LimitedBackend):
        def started_workers(self, cluster):
            return 4 if cluster.name == "first" else 0

    config = Config()
    config.GatewayPolicy.user_limits = {"workers": 5, "cores": 0, "memory": 0, "clusters": 0}
    b = Running(config=config)
    b.add("first")
    second = b.add("second")
    await b.on_cluster_heartbeat("first", heartbeat(-10))  # the target says none
    with pytest.raises(PublicException, match="past your limit of 5 workers") as refused:
        await b.forward_message_to_scheduler(second, {"op": "scale", "count": 2})
    assert "first (4 workers" in str(refused.value)


def test_cluster_metrics_sum_by_user_and_by_each_group():
    from pangeohub.gateway.cluster_metrics import cluster_metrics

    config = {"scheduler_cores": 1, "worker_cores": 2}
    body, content_type = cluster_metrics(
        [
            ("grace", {"pangeo-data:climate"}, 3, config),
            ("grace", {"pangeo-data:climate"}, 0, config),
            ("ada", {"pangeo-data:climate", "pangeo-data:admins"}, 1, config),
        ]
    )
    text = body.decode()
    assert content_type.startswith("text/plain")
    assert 'pangeohub_dask_clusters_by_user{user="grace"} 2.0' in text
    assert 'pangeohub_dask_workers_by_user{user="grace"} 3.0' in text
    assert 'pangeohub_dask_cores_by_user{user="grace"} 8.0' in text  # 1 + 3*2, then 1
    assert 'pangeohub_dask_clusters_by_group{group="pangeo-data:climate"} 3.0' in text
    assert 'pangeohub_dask_cores_by_group{group="pangeo-data:admins"} 3.0' in text


def test_a_report_rewrites_only_its_users_record_and_an_old_single_file_is_split(tmp_path):
    """What the hub reports is kept per user: a start rewrites its user's file alone (not
    every running server's), a stop of their last server removes it, a restarted gateway
    reads them all, and the single file earlier versions kept is split up once."""
    import json
    import os

    path = tmp_path / "servers.json"
    path.write_text(json.dumps({"ada": {"/": {"image": "a"}}, "bob": {"/x": {"image": "b"}}}))
    config = Config()
    config.LimitedBackend.servers_file = str(path)
    first = LimitedBackend(config=config)
    assert first.server_records.by_user["bob"] == {"/x": {"image": "b"}}
    assert not path.exists()
    files = tmp_path / "servers.json.d"
    assert sorted(os.listdir(files)) == ["ada.json", "bob.json"]
    assert all(os.stat(files / name).st_mode & 0o077 == 0 for name in os.listdir(files))

    bob_before = os.stat(files / "bob.json").st_mtime_ns
    first.server_records.by_user.setdefault("cy d", {})["/"] = {"image": "c"}
    first.server_records.save("cy d")
    assert os.stat(files / "bob.json").st_mtime_ns == bob_before
    first.server_records.by_user["ada"].pop("/")
    first.server_records.save("ada")
    assert sorted(os.listdir(files)) == ["bob.json", "cy%20d.json"]

    again = LimitedBackend(config=config)
    assert again.server_records.by_user == {
        "bob": {"/x": {"image": "b"}},
        "cy d": {"/": {"image": "c"}},
    }


async def test_a_cluster_asks_the_hub_for_its_workers_token_only_when_it_needs_one():
    """The hub makes no token at a server's start: the first cluster of a server asks
    for one, later clusters reuse it while more than half its lifetime is left, and when
    the hub refuses a new one the record keeps the one it has (valid until it expires)."""
    import time

    import aiohttp
    from aiohttp import web

    asked = []
    answers = [web.json_response({"token": "t1", "expires_in": 600}, status=201)]

    async def token_route(request):
        asked.append((request.headers.get("Authorization"), await request.json()))
        return answers.pop(0)

    app = web.Application()
    app.router.add_post("/hub/api/pangeohub/dask-worker-token", token_route)
    async with serving(app) as url:
        config = Config()
        config.LimitedBackend.hub_api_url = f"{url}/hub/api"
        config.LimitedBackend.hub_service_token = "gateway-token"
        b = LimitedBackend(config=config)
        b.session = aiohttp.ClientSession()
        try:
            b.server_records.by_user["ada"] = {
                "/": {"image": "i", "environment": {"A": "1"}, "worker_token": True},
                "/plain": {"image": "i", "environment": {}},  # a hub that gives no token
            }
            await b.worker_tokens.ensure("ada", "/plain")
            await b.worker_tokens.ensure("ada", "/not-running")
            await b.worker_tokens.ensure("bob", "/")
            assert asked == []

            await b.worker_tokens.ensure("ada", "/")
            record = b.server_records.by_user["ada"]["/"]
            assert record["environment"] == {"A": "1", "JUPYTERHUB_API_TOKEN": "t1"}
            assert asked == [("token gateway-token", {"user": "ada", "server": "/"})]
            await b.worker_tokens.ensure("ada", "/")  # a second cluster: the same token
            assert len(asked) == 1

            record["token_expires"] = time.time() + 299  # less than half of 600 left
            answers.append(web.json_response({"error": "not running"}, status=404))
            await b.worker_tokens.ensure("ada", "/")
            assert len(asked) == 2 and record["environment"]["JUPYTERHUB_API_TOKEN"] == "t1"
            answers.append(web.json_response({"token": "t2", "expires_in": 600}, status=201))
            await b.worker_tokens.ensure("ada", "/")
            assert record["environment"]["JUPYTERHUB_API_TOKEN"] == "t2"
            assert record["token_expires"] > time.time() + 590
        finally:
            await b.session.close()
