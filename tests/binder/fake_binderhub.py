"""A stand-in for BinderHub in API-only mode (as binderhub-service runs it), on loopback.

It cannot build images here (no Docker, no registry), so it replays what BinderHub's
``BuildHandler`` sends with ``build_only=true``: ``data: {json}`` events (``waiting``,
repo2docker's JSON log lines, then ``ready`` with ``imageName``, or ``failed``),
``:keepalive`` comments, and the stream kept open after ``ready`` as BinderHub keeps it
(so the client must close it). A ref named ``no-such-...`` cannot be resolved: BinderHub's
first and only event is then its ``failed`` "Could not resolve ref" message. Requests
without ``Authorization: token ...`` get a 403, as BinderHub's HubOAuth answers.
"""

from __future__ import annotations

import asyncio
import json
import threading

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.netutil import bind_sockets

IMAGE_PREFIX = "registry.test/binder-"


class BuildHandler(web.RequestHandler):
    def on_connection_close(self):
        self.settings["closed"].append(self.request.path)  # the client hung up

    async def emit(self, data: dict) -> None:
        self.write(f"data: {json.dumps(data)}\n\n")
        await self.flush()

    async def get(self, provider: str, spec: str):
        self.settings["requests"].append((provider, spec, self.get_argument("build_only", "")))
        if not self.request.headers.get("Authorization", "").startswith("token "):
            raise web.HTTPError(403)
        self.set_header("content-type", "text/event-stream")
        self.set_header("cache-control", "no-cache")
        if provider != "gh":
            await self.emit(
                {"phase": "failed", "message": f"No provider found for prefix {provider}\n"}
            )
            return
        org, repo, ref = spec.split("/", 2)
        if ref.startswith("no-such-"):  # BinderHub resolves the ref before anything else
            await self.emit(
                {
                    "phase": "failed",
                    "message": f"Could not resolve ref for gh:{spec}. Double check your URL "
                    "and that your repo is public.\n",
                }
            )
            return
        image = f"{IMAGE_PREFIX}{org}-2d{repo}-abcdef:{'a' * 40}"
        if ref == "broken":
            await self.emit({"phase": "waiting", "message": "Waiting for build to start...\n"})
            await self.emit({"phase": "building", "message": "Step 1/3 : FROM buildpack-deps\n"})
            await self.emit(
                {
                    "phase": "failure",
                    "message": "ERROR: No matching distribution found for nothing-here\n",
                }
            )
            return
        await self.emit({"phase": "waiting", "message": "Waiting for build to start...\n"})
        self.write(":keepalive\n\n")
        for line in (
            "Picked Git content provider.",
            "Installing requirements.txt",
            "Successfully pushed",
        ):
            await self.emit({"phase": "building", "message": line + "\n"})
        await self.emit({"phase": "ready", "message": "Done! Image built\n", "imageName": image})
        await asyncio.sleep(60)  # BinderHub keeps the stream open after ready


class FakeBinderHub:
    """Serve the stand-in on 127.0.0.1 in a thread of its own; ``url`` ends with /."""

    def __init__(self):
        self.requests: list[tuple] = []
        self.closed: list[str] = []  # paths of streams the client closed
        sockets = bind_sockets(0, "127.0.0.1")
        port = sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/services/binder/"
        self.loop: IOLoop | None = None
        ready = threading.Event()

        def serve():
            asyncio.set_event_loop(asyncio.new_event_loop())
            self.loop = IOLoop.current()
            app = web.Application(
                [(r"/services/binder/build/([^/]+)/(.+)", BuildHandler)],
                requests=self.requests,
                closed=self.closed,
            )
            self.server = HTTPServer(app)
            self.server.add_sockets(sockets)
            ready.set()
            self.loop.start()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        ready.wait(10)

    def stop(self):
        def halt():
            self.server.stop()
            self.loop.stop()

        self.loop.add_callback(halt)
        self.thread.join(10)
