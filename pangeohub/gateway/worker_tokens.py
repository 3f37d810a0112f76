"""The hub's route the gateway calls for a server's workers' token.

``POST /hub/api/pangeohub/dask-worker-token`` with ``{"user": ..., "server": "/<name>"}``
answers ``{"token": ..., "expires_in": seconds}`` for a server that is running. Only a
token holding :data:`WORKER_TOKEN_SCOPE` (the gateway's service role) may call it, and the
token it makes has only ``c.GatewayService.worker_token_scopes``, never more than its user.
The gateway asks when a server's cluster starts (:mod:`.worker_token_request`), so the hub makes no
token at a server's start.
"""

from __future__ import annotations

from jupyterhub.apihandlers import APIHandler
from tornado import web

from .worker_token_request import WORKER_TOKEN_API

WORKER_TOKEN_SCOPE = "custom:pangeohub:dask-worker-tokens"
WORKER_TOKEN_ROUTE = "/api" + WORKER_TOKEN_API  # JupyterHub prefixes it with /hub/


class WorkerTokenHandler(APIHandler):
    """Make a token for the Dask workers of one running server."""

    def initialize(self, gateway):
        self.gateway = gateway

    async def post(self):
        if WORKER_TOKEN_SCOPE not in self.expanded_scopes:
            raise web.HTTPError(403, "Only the Dask Gateway service may ask for workers' tokens.")
        body = self.get_json_body()
        body = body if isinstance(body, dict) else {}
        user_name, server = body.get("user"), body.get("server")
        if not (isinstance(user_name, str) and isinstance(server, str) and server[:1] == "/"):
            raise web.HTTPError(400, 'Send {"user": "<name>", "server": "/<server name>"}.')
        user = self.find_user(user_name)
        name = server[1:]
        if user is None or name not in user.orm_spawners or not user.spawners[name].active:
            raise web.HTTPError(404, f"{user_name} has no running server {server!r}.")
        try:
            token, expires_in = self.gateway.mint_worker_token(user.spawners[name])
        except (ValueError, KeyError) as error:  # e.g. a scope of a service not running here
            self.db.rollback()
            self.log.warning(
                "No token for the Dask workers of %s's server %s: %s "
                "(check c.GatewayService.worker_token_scopes)",
                user_name,
                server,
                error,
            )
            raise web.HTTPError(
                503,
                "The hub cannot make tokens for Dask workers with the scopes it is set up "
                "with (c.GatewayService.worker_token_scopes); tell a hub admin.",
            ) from None
        self.log.info("Made a token for the Dask workers of %s's server %s", user_name, server)
        self.set_status(201)
        self.write({"token": token, "expires_in": expires_in})
