"""Starting a launched server through the hub's REST API, as the ``binder-launcher``
service: ``POST /users/<name>/servers/<server>``, then the server's progress stream
(``GET .../progress``, JupyterHub's own spawn page follows it) until it is ready or failed.
Through the API the hub's rules (profile, named-server limit and name rule, disk,
scratch, culling) apply as to any other start."""

from __future__ import annotations

import json
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .eventstream import data_events
from .launch import Starts

FAILED = "Spawn failed: "  # how JupyterHub's progress API begins a failure's message
STOPPED = "The server stopped while starting; ask a hub admin to look at the hub's log."


class HubAPIStarts(Starts):
    """Starts servers through the hub's REST API at ``api_url`` with the service's
    ``token``, waiting at most ``ready_timeout`` seconds for a server to be ready."""

    def __init__(self, api_url: str, token: str, ready_timeout: float):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.ready_timeout = ready_timeout

    def _request(self, path: str, **kwargs) -> HTTPRequest:
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        return HTTPRequest(f"{self.api_url}{path}", headers=headers, **kwargs)

    async def start(self, user, name: str, options: dict) -> str | None:
        spawner = user.spawners.get(name) if name in user.orm_spawners else None
        if spawner is not None and spawner.ready:
            return None  # launched before and still running: land in it again
        path = f"/users/{quote(user.name)}/servers/{quote(name)}"
        response = await AsyncHTTPClient().fetch(
            self._request(path, method="POST", body=json.dumps(options), request_timeout=60),
            raise_error=False,
        )
        if response.code >= 400:
            try:
                return json.loads(response.body)["message"]
            except (ValueError, KeyError, TypeError):
                return f"The hub refused to start the server ({response.code})."
        return await self.wait_until_ready(f"{path}/progress")

    async def wait_until_ready(self, progress_path: str) -> str | None:
        """Follow the server's progress stream to its end: None when it is ready."""
        try:
            response = await AsyncHTTPClient().fetch(
                self._request(progress_path, request_timeout=self.ready_timeout),
                raise_error=False,
            )
        except HTTPClientError as error:
            if error.code != 599:
                raise
            return f"The server did not become ready within {self.ready_timeout:g} s."
        if response.code >= 400:
            return STOPPED  # neither starting nor failed: it was stopped meanwhile
        final = (data_events(response.body) or [{}])[-1]
        if final.get("ready"):
            return None
        message = str(final.get("message", ""))
        if final.get("failed") and message.startswith(FAILED):
            return message[len(FAILED) :]  # the hub's own words, as its spawn page shows
        return STOPPED  # cancelled, or ended for no reason the hub knows
