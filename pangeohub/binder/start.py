"""Starting a launched server through the hub's REST API, as the ``binder-launcher``
service: ``POST /users/<name>/servers/<server>``, then the server's progress stream
(``GET .../progress``, which JupyterHub's own spawn page follows) until it is ready or
failed. Through the API the hub's rules (profile, named-server limit and name rule,
disk, scratch, culling) apply as to any other start.

A session of its own (aiohttp, resolving names as the system does): waiting for a server
must not hold one of the few connections of the hub's shared tornado client, which the
hub itself needs to start that server (the proxy's routes, the server's first answer).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import aiohttp

from .eventstream import data_events
from .launch import Starts

FAILED = "Spawn failed: "  # how JupyterHub's progress API begins a failure's message
STOPPED = "The server stopped while starting; ask a hub admin to look at the hub's log."
POST_TIMEOUT = 60  # seconds: the hub answers a start within its slow_spawn_timeout


class HubAPIStarts(Starts):
    """Starts servers through the hub's REST API at ``api_url`` with the service's
    ``token``, waiting at most ``ready_timeout`` seconds for a server to be ready."""

    def __init__(self, api_url: str, token: str, ready_timeout: float):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.ready_timeout = ready_timeout

    async def start(self, user, name: str, options: dict) -> str | None:
        spawner = user.spawners.get(name) if name in user.orm_spawners else None
        if spawner is not None and spawner.ready:
            return None  # launched before and still running: land in it again
        url = f"{self.api_url}/users/{quote(user.name)}/servers/{quote(name)}"
        connector = aiohttp.TCPConnector(resolver=aiohttp.ThreadedResolver())
        headers = {"Authorization": f"token {self.token}"}
        async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
            timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)
            async with http.post(url, json=options, timeout=timeout) as response:
                if response.status >= 400:
                    return refusal_message(response.status, await response.read())
            return await self.wait_until_ready(http, f"{url}/progress")

    async def wait_until_ready(self, http: aiohttp.ClientSession, url: str) -> str | None:
        """Follow the server's progress stream to its end: None when it is ready."""
        try:
            async with http.get(url, timeout=aiohttp.ClientTimeout(total=self.ready_timeout)) as r:
                if r.status >= 400:
                    return STOPPED  # neither starting nor failed: it was stopped meanwhile
                body = await r.read()
        except TimeoutError:
            return f"The server did not become ready within {self.ready_timeout:g} s."
        final = (data_events(body) or [{}])[-1]
        if final.get("ready"):
            return None
        message = str(final.get("message", ""))
        if final.get("failed") and message.startswith(FAILED):
            return message[len(FAILED) :]  # the hub's own words, as its spawn page shows
        return STOPPED  # cancelled, or ended for no reason the hub knows


def refusal_message(status: int, body: bytes) -> str:
    """The hub's message refusing a start (its JSON error body), or one naming the status."""
    try:
        return json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        return f"The hub refused to start the server ({status})."
