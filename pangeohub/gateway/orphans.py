"""Clusters whose hub server is gone are stopped (it stopped while the gateway was down).

Every ``orphan_check_period`` seconds the gateway asks the hub which servers each user
with a server-tagged cluster has, and stops the clusters of servers it no longer has. A
user the hub does not answer for keeps their clusters until the next check.
"""

from __future__ import annotations

from urllib.parse import quote

from .options import SERVER_OPTION
from .rounds import Rounds


class OrphanReaper:
    """The periodic check of one backend (a :class:`~.backend.PangeoBackendMixin`)."""

    def __init__(self, backend):
        self.backend = backend
        self._rounds: Rounds | None = None

    def start(self) -> None:
        """Check every ``orphan_check_period`` seconds, when the hub can be asked."""
        backend = self.backend
        period = backend.orphan_check_period
        if period > 0 and backend.hub_api_url and backend.hub_service_token:
            self._rounds = Rounds(
                self.stop_orphaned_clusters,
                period,
                backend.log,
                "Checking for orphaned clusters",
                first=min(period, 30),
            )
            self._rounds.start()

    async def stop(self) -> None:
        if self._rounds is not None:
            await self._rounds.stop()
            self._rounds = None

    async def _running_servers(self, username: str) -> set[str] | None:
        """Tags of ``username``'s servers the hub has (None: the hub did not say)."""
        backend = self.backend
        url = f"{backend.hub_api_url.rstrip('/')}/users/{quote(username, safe='')}"
        headers = {"Authorization": f"token {backend.hub_service_token}"}
        async with backend.session.get(url, headers=headers) as response:
            if response.status == 404:
                return set()
            if response.status != 200:
                backend.log.warning(
                    "The hub answered %d for %s's servers", response.status, username
                )
                return None
            servers = (await response.json()).get("servers")
        if servers is None:
            backend.log.warning("The gateway's hub token cannot read servers (read:servers)")
            return None
        return {"/" + name for name in servers}

    async def stop_orphaned_clusters(self) -> list[str]:
        """Stop the clusters whose hub server is no longer running; their names."""
        backend = self.backend
        tagged: dict[str, list] = {}
        for cluster in await backend.list_clusters():
            server = (cluster.options or {}).get(SERVER_OPTION)
            if server:
                tagged.setdefault(cluster.username, []).append((cluster, server))
        stopped = []
        for username, clusters in tagged.items():
            running = await self._running_servers(username)
            if running is None:
                continue
            for cluster, server in clusters:
                if server not in running:
                    backend.log.info("Stopping %s: its server %s is gone", cluster.name, server)
                    await backend.stop_cluster(cluster.name)
                    stopped.append(cluster.name)
        return stopped
