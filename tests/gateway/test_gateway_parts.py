"""The backend's parts on their own: a new cluster's admission, the hub's routes and the
orphan check, against dask-gateway-server's Backend interface over a dict (no processes)."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from dask_gateway_server.backends.base import PublicException
from dask_gateway_server.models import Cluster, ClusterStatus, User
from traitlets.config import Config

from pangeohub.gateway.backend import PangeoBackendMixin
from pangeohub.gateway.hub_routes import METRICS_ROUTE, SERVER_ROUTE, STOP_ROUTE

from .test_gateway_backend import CONFIG, RecordingBackend, serving

TOKEN = "the-gateways-hub-token"


class UpstreamStart(RecordingBackend):
    """Upstream's start: the options processed once, then the cluster made."""

    stopped: list[str]

    async def start_cluster(self, user, cluster_options):
        options, config = await self.process_cluster_options(user, cluster_options)
        cluster = self.add(f"c{len(self.clusters)}", user.name)
        cluster.options = dict(options)
        return cluster.name

    async def stop_cluster(self, cluster_name, failed=False):
        self.stopped.append(cluster_name)
        self.clusters.pop(cluster_name)

    async def list_clusters(self, username=None, statuses=None):
        return [c for c in self.clusters.values() if username in (None, c.username)]


class Starting(PangeoBackendMixin, UpstreamStart):
    pass


def starting(**settings) -> Starting:
    config = Config()
    config.GatewayPolicy.user_limits = {"workers": 0, "cores": 0, "memory": 0, "clusters": 1}
    config.Starting.cluster_config_class = "pangeohub.gateway.backend.PangeoLocalClusterConfig"
    for key, value in settings.items():
        setattr(config.Starting, key, value)
    b = Starting(config=config)
    b.stopped = []
    return b


async def test_a_new_cluster_past_the_limit_is_refused_and_its_options_made_once():
    made = []

    def hook(user):
        made.append(user.name)  # e.g. credentials minted for the cluster
        return {}

    b = starting()
    b.policy.environment_hooks = [hook]
    await b.start_cluster(User("ada"), {})
    assert made == ["ada"], "the options are processed once per start"
    with pytest.raises(PublicException, match="at most 1 Dask clusters at once") as refused:
        await b.start_cluster(User("ada"), {})
    assert "c0 (0 workers" in str(refused.value)
    await b.start_cluster(User("bob"), {})  # another user's limit is their own


@pytest.fixture
async def routes():
    """The backend's routes on a loopback aiohttp server."""
    b = starting(hub_service_token=TOKEN, metrics_token="prometheus")
    app = web.Application()
    b.hub_routes.add_to(app)
    async with serving(app) as url, aiohttp.ClientSession(url) as session:
        yield b, session


async def test_only_the_hub_reports_a_server_and_its_record_is_kept(routes):
    b, session = routes
    body = {"user": "ada", "server": "/", "image": "i", "environment": {"A": 1}}
    for headers in ({}, {"Authorization": "token wrong"}, {"Authorization": f"bearer {TOKEN}"}):
        async with session.post(SERVER_ROUTE, json=body, headers=headers) as response:
            assert response.status == 403
    assert b.server_records.get("ada", "/") is None
    hub = {"Authorization": f"token {TOKEN}"}
    async with session.post(SERVER_ROUTE, json={"user": "ada"}, headers=hub) as response:
        assert response.status == 400
    body.update(worker_token=True, pod="jupyter-ada", namespace=7)
    async with session.post(SERVER_ROUTE, json=body, headers=hub) as response:
        assert response.status == 200
    assert b.server_records.get("ada", "/") == {
        "image": "i",
        "environment": {"A": "1"},
        "worker_token": True,
        "pod": "jupyter-ada",
    }


async def test_the_hub_stops_a_servers_clusters_and_its_record(routes):
    b, session = routes
    b.server_records.put("ada", "/x", {"image": "i", "environment": {}})
    await b.start_cluster(User("ada"), {"server": "/x"})
    other = b.add("kept", "ada")
    other.options = {"server": "/y"}
    hub = {"Authorization": f"token {TOKEN}"}
    async with session.post(STOP_ROUTE, json={"user": "ada", "server": "/x"}, headers=hub) as r:
        assert (r.status, await r.json()) == (200, {"stopped": ["c0"]})
    assert b.stopped == ["c0"] and b.server_records.get("ada", "/x") is None


async def test_metrics_need_their_own_token(routes):
    b, session = routes
    b.add("first", "ada")
    async with session.get(METRICS_ROUTE, headers={"Authorization": f"token {TOKEN}"}) as r:
        assert r.status == 403
    async with session.get(METRICS_ROUTE, headers={"Authorization": "Bearer prometheus"}) as r:
        assert r.status == 200
        assert 'pangeohub_dask_clusters_by_user{user="ada"} 1.0' in await r.text()


async def test_clusters_whose_server_is_gone_are_stopped_and_unknown_answers_keep_them():
    answers = {"ada": web.json_response({"servers": {"": {}}}), "bob": web.Response(status=500)}

    async def user_route(request):
        name = request.match_info["name"]
        return answers.get(name) or web.json_response({"error": "no such user"}, status=404)

    app = web.Application()
    app.router.add_get("/hub/api/users/{name}", user_route)
    async with serving(app) as url:
        b = starting(hub_api_url=f"{url}/hub/api", hub_service_token=TOKEN)
        b.session = aiohttp.ClientSession()
        try:
            for name, user, server in [
                ("running", "ada", "/"),
                ("gone", "ada", "/old"),
                ("unsure", "bob", "/"),
                ("nobody", "cy", "/"),
            ]:
                b.clusters[name] = Cluster(
                    name, user, "t", {"server": server}, dict(CONFIG), ClusterStatus.RUNNING
                )
            b.add("untagged", "cy")
            assert sorted(await b.orphans.stop_orphaned_clusters()) == ["gone", "nobody"]
            assert sorted(b.clusters) == ["running", "unsure", "untagged"]
        finally:
            await b.session.close()
