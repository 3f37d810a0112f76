"""Dask Gateway for pangeohub: cluster options bounded per group, per-user limits,
clusters that run the user's own image and stop with the server that made them.

- :mod:`.options` — :class:`GatewayPolicy`: the options users see and their bounds.
- :mod:`.backend` — per-user limits across clusters, the local backend, the stop route.
- :mod:`.hub` — the hub side: the service, the servers' environment, the stop hook.
- :mod:`.worker_tokens` — the hub's route the gateway calls for a server's workers' token.
"""

from .options import GatewayPolicy

__all__ = ["GatewayPolicy"]
