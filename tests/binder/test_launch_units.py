"""The launch as an object, without a hub: :class:`Launch` over stand-in builds and
starts, and :class:`HubAPIStarts` against a stand-in of the hub's REST API (the server's
POST and its progress stream, as JupyterHub's ``SpawnProgressAPIHandler`` answers)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from pangeohub.binder.builder import event
from pangeohub.binder.launch import OPTION, Builds, Built, Launch, LaunchRequest, Starts
from pangeohub.binder.spec import LaunchError, parse_spec
from pangeohub.binder.start import STOPPED, HubAPIStarts

REPO = parse_spec("gh", "h14org/demo/main", "https://github.test")


def person(name: str = "h14ann"):
    return SimpleNamespace(name=name, url=f"/user/{name}/", spawners={}, orm_spawners={})


def request(profile: str = "") -> LaunchRequest:
    return LaunchRequest(person(), "gh", "h14org/demo/main", REPO, "lab/tree/x.md", profile)


class ScriptedBuilds(Builds):
    def __init__(self, *items, refuse: LaunchError | None = None):
        self.items, self.refuse, self.closed = items, refuse, False

    async def build(self, request):
        if self.refuse:
            raise self.refuse
        try:
            for item in self.items:
                yield item
        finally:
            self.closed = True


class RecordedStarts(Starts):
    def __init__(self, failure: str | None = None):
        self.failure, self.started = failure, []

    async def start(self, user, name, options):
        self.started.append((user.name, name, options))
        return self.failure


async def events_of(launch: Launch) -> list[dict]:
    return [e async for e in launch.events()]


def name_for(repo, suffix):
    return f"demo-{suffix[:7]}"


async def test_a_launch_passes_the_build_on_then_starts_and_lands():
    built = Built("abcdef0123", {"environment": "demo-abc", "commit": "abcdef0123"})
    builds = ScriptedBuilds(event("resolved", "r", 3), event("log", "line"), built)
    starts = RecordedStarts()
    seen = await events_of(Launch(request("small"), builds, starts, name_for))
    assert [e["phase"] for e in seen] == ["resolved", "log", "launching", "ready"]
    assert starts.started == [
        ("h14ann", "demo-abcdef0", {OPTION: built.option, "profile": "small"})
    ]
    assert seen[-1]["url"] == "/user/h14ann/demo-abcdef0/lab/tree/x.md"
    assert seen[-1]["server"] == "demo-abcdef0" and builds.closed


async def test_a_failed_build_starts_nothing_and_a_failed_start_says_why():
    starts = RecordedStarts()
    builds = ScriptedBuilds(event("failed", "no such package", 100), Built("x", {}))
    seen = await events_of(Launch(request(), builds, starts, name_for))
    assert [e["phase"] for e in seen] == ["failed"] and starts.started == []

    starts = RecordedStarts(failure="Your disk is full.")
    seen = await events_of(Launch(request(), ScriptedBuilds(Built("x", {})), starts, name_for))
    assert [e["phase"] for e in seen] == ["launching", "failed"]
    assert seen[-1]["message"] == "Your disk is full."


async def test_a_refusal_is_raised_before_any_event():
    refused = LaunchError(429, "You already have 1 build(s) under way on this hub.")
    launch = Launch(request(), ScriptedBuilds(refuse=refused), RecordedStarts(), name_for)
    with pytest.raises(LaunchError) as raised:
        await anext(launch.events())
    assert raised.value.status == 429


# --- starting through the hub's REST API -------------------------------------------


class ServerHandler(web.RequestHandler):
    def post(self, user, server):
        script = self.settings["script"]
        self.settings["posted"].append((user, server, json.loads(self.request.body)))
        self.set_status(script["post"])
        if script["post"] >= 400:
            self.finish(json.dumps({"status": script["post"], "message": script["message"]}))


class ProgressHandler(web.RequestHandler):
    async def get(self, user, server):
        script = self.settings["script"]
        assert self.request.headers["Authorization"] == "token launcher-token"
        if script["progress"] == "not starting":
            raise web.HTTPError(400, f"{user}:{server} is not starting...")
        if script["progress"] == "hang":
            await self.settings["never"].wait()
        self.set_header("Content-Type", "text/event-stream")
        for body in script["progress"]:
            self.write("\n\n")  # JupyterHub's keep-alive
            self.write(f"data: {json.dumps(body)}\n\n")
            await self.flush()


@pytest.fixture
async def hub_api():
    script, posted = {}, []
    app = web.Application(
        [
            (r"/hub/api/users/([^/]+)/servers/([^/]+)", ServerHandler),
            (r"/hub/api/users/([^/]+)/servers/([^/]+)/progress", ProgressHandler),
        ],
        script=script,
        posted=posted,
        never=asyncio.Event(),
    )
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    yield SimpleNamespace(url=f"http://127.0.0.1:{port}/hub/api", script=script, posted=posted)
    server.stop()


@pytest.mark.parametrize(
    "script, expected",
    [
        ({"post": 202, "progress": [{"progress": 50}, {"ready": True, "url": "/u"}]}, None),
        ({"post": 201, "progress": [{"ready": True, "url": "/u"}]}, None),
        (
            {"post": 202, "progress": [{"failed": True, "message": "Spawn failed: No disk."}]},
            "No disk.",
        ),
        ({"post": 202, "progress": [{"failed": True, "message": "Spawn cancelled"}]}, STOPPED),
        ({"post": 202, "progress": "not starting"}, STOPPED),
        ({"post": 400, "message": "You have 3 named servers already."}, None),
        ({"post": 202, "progress": "hang"}, "The server did not become ready within 1 s."),
    ],
)
async def test_a_start_waits_on_the_servers_progress_stream(hub_api, script, expected):
    hub_api.script.update(script)
    starts = HubAPIStarts(hub_api.url, "launcher-token", ready_timeout=1)
    said = await starts.start(person(), "demo-abcdef0", {OPTION: {"environment": "e"}})
    if script["post"] >= 400:
        expected = script["message"]
    assert said == expected
    assert hub_api.posted == [("h14ann", "demo-abcdef0", {OPTION: {"environment": "e"}})]


async def test_a_server_already_running_is_landed_in_again(hub_api):
    user = person()
    user.orm_spawners["demo-abcdef0"] = object()
    user.spawners["demo-abcdef0"] = SimpleNamespace(ready=True)
    assert await HubAPIStarts(hub_api.url, "t", 1).start(user, "demo-abcdef0", {}) is None
    assert hub_api.posted == []
