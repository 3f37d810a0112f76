"""The gateway's side of workers' tokens: asked from the hub as a server's cluster starts.

The hub makes no token at a server's start: when a cluster starts from a server whose
record says the hub gives its workers a token, the gateway asks the hub's route
(:mod:`.worker_tokens`) for one if the record has none or half its lifetime is gone, and
puts it in the record's workers' environment (``JUPYTERHUB_API_TOKEN``).
"""

from __future__ import annotations

import time

import aiohttp

# the hub's route for a server's workers' token, under $JUPYTERHUB_API_URL (.worker_tokens)
WORKER_TOKEN_API = "/pangeohub/dask-worker-token"
TOKEN_VARIABLE = "JUPYTERHUB_API_TOKEN"
HUB_TIMEOUT = 10  # seconds a cluster's start waits for the hub to make its workers' token


class WorkerTokenRequests:
    """The requests of one backend (a :class:`~.backend.PangeoBackendMixin`)."""

    def __init__(self, backend):
        self.backend = backend

    async def ensure(self, username: str, server) -> None:
        """Put a token for the workers in the record of the server a cluster starts from,
        asked from the hub when the record has none or half its lifetime is gone. Without
        one the cluster still starts, and its workers have no token (e.g. no scratch
        credentials); the log says why."""
        backend = self.backend
        records = backend.server_records
        record = records.get(username, server if isinstance(server, str) else "")
        if not record or not record.get("worker_token"):
            return  # not one of the user's running servers, or the hub gives no token
        left = record.get("token_expires", 0) - time.time()
        if TOKEN_VARIABLE in record["environment"] and left > record.get("token_lifetime", 0) / 2:
            return
        url = backend.hub_api_url.rstrip("/") + WORKER_TOKEN_API
        headers = {"Authorization": f"token {backend.hub_service_token}"}
        try:
            async with backend.session.post(
                url,
                json={"user": username, "server": server},
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=HUB_TIMEOUT),
            ) as response:
                if response.status != 201:
                    backend.log.warning(
                        "The hub answered %d for the workers' token of %s's server %s",
                        response.status,
                        username,
                        server,
                    )
                    return
                answer = await response.json()
            token, lifetime = str(answer["token"]), float(answer["expires_in"])
        except Exception as error:  # the hub unreachable, or a reply without a token
            backend.log.warning(
                "No workers' token for %s's server %s (%s)", username, server, type(error).__name__
            )
            return
        record["environment"][TOKEN_VARIABLE] = token
        record.update(token_expires=time.time() + lifetime, token_lifetime=lifetime)
        records.save(username)
        await backend.server_recorded(username, server, record)
