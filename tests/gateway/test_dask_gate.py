"""The gate in a cluster's own processes (pangeohub.dask_gate): a real scheduler's HTTP
server, with the environment the gateway gives it."""

from __future__ import annotations

import asyncio
import os
import sys
from unittest import mock

import dask
import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from pangeohub.dask_gate import HEADER, KEY_ENV, ROUTES_ENV, default_modules, gate_environment


def test_the_gateway_gives_the_gate_first_and_keeps_an_admins_routes():
    env = gate_environment({"A": "1"}, "scheduler", "k")
    assert env["DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"] == "['pangeohub.dask_gate.scheduler']"
    assert env[KEY_ENV] == "k" and ROUTES_ENV not in env and env["A"] == "1"
    mine = "['distributed.http.health']"
    env = gate_environment({"DASK_DISTRIBUTED__WORKER__HTTP__ROUTES": mine}, "worker", "k")
    assert env[ROUTES_ENV] == mine
    with mock.patch.dict(os.environ, {ROUTES_ENV: mine}):
        assert default_modules("worker") == ["distributed.http.health"]
    with mock.patch.dict(os.environ, {ROUTES_ENV: ""}):
        assert "distributed.http.scheduler.prometheus" in default_modules("scheduler")


@pytest.mark.parametrize("key", ["k3y", None])
def test_a_scheduler_answers_only_its_key(key):
    pytest.importorskip("bokeh")
    env = gate_environment({}, "scheduler", key or "")
    if key is None:
        env.pop(KEY_ENV)  # a process without its key opens for nobody

    async def main():
        from distributed import Scheduler

        async with Scheduler(host="127.0.0.1", port=0, dashboard_address="127.0.0.1:0") as s:
            base = f"http://127.0.0.1:{s.http_server.port}"
            client = AsyncHTTPClient()

            async def status(path, **headers):
                answer = await client.fetch(base + path, headers=headers, raise_error=False)
                return answer.code

            for path in ("/status", "/metrics", "/health", "/statics/css/base.css", "/x"):
                assert await status(path) == 403, path
                assert await status(path, **{HEADER: "wrong"}) == 403, path
                if key:
                    assert await status(path, **{HEADER: key}) == (404 if path == "/x" else 200)
            with pytest.raises(HTTPClientError) as refused:
                await websocket_connect(HTTPRequest(base.replace("http", "ws") + "/status/ws"))
            assert refused.value.code == 403

    try:
        with mock.patch.dict(os.environ, env):
            for name in [m for m in sys.modules if m.startswith("pangeohub.dask_gate.")]:
                del sys.modules[name]  # a scheduler's process loads its routes once, at start
            dask.config.refresh()  # the environment's settings, as a new process reads them
            asyncio.run(main())
    finally:
        dask.config.refresh()
