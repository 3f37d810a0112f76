"""Who may see a Dask dashboard: its cluster's owner and the hub's admins, signed in.

dask-gateway-server serves every cluster's dashboard under
``<prefix>/clusters/<name>/`` with no check at all (dask-gateway#570): the name is the
only protection, and names end up in shared notebooks and screenshots. This module holds
the one decision; :mod:`.dashboard_service` wires it two ways (a guard in front of the
gateway's proxy on one machine, a traefik ``forwardAuth`` endpoint on Kubernetes).

Identity comes from the hub (JupyterHub's ``HubOAuth``: the cookie of the gateway's own
OAuth client, or an ``Authorization: token`` header). Ownership comes from the gateway
itself: ``GET /api/v1/clusters/<name>`` answers 200 only to the cluster's owner
(``User.has_permissions`` in dask-gateway-server), so the person's own token is asked.

On one machine the guard is also the only way in: each cluster's scheduler and workers
answer HTTP only to a request carrying the cluster's key (:mod:`pangeohub.dask_gate`),
which the guard adds to what it allows (:func:`cluster_key`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Bool, Int, Unicode, default
from traitlets.config import Configurable

from ..endpoints import hub_ports
from ..numbers import FiniteFloat

# The hub's secret (state directory) from which each cluster's gate key is derived.
KEY_SECRET = "dask_dashboards_key"
# A dashboard path, relative to the gateway's prefix: /clusters/<name>[/...]
_CLUSTER_PATH = re.compile(r"^/clusters/([^/?#]+)(?:[/?#].*)?$")


def is_plain(path: str) -> bool:
    """Whether ``path`` means the same to every proxy after this one: no ``.``/``..``
    segment, no empty one, nothing encoded that a later hop might decode into one
    (else ``/clusters/<mine>/../<theirs>/`` would be checked as mine, served as theirs)."""
    lower = path.lower()
    if any(code in lower for code in ("%2e", "%2f", "%5c", "\\", "%00")):
        return False
    segments = path.split("/")[1:]
    inner = segments[:-1]  # a trailing slash leaves one empty segment at the end
    return all(s not in (".", "..") for s in segments) and all(inner)


def cluster_of(path: str, prefix: str) -> str | None:
    """The cluster whose dashboard ``path`` (a URL path) is, or None when it is none."""
    prefix = prefix.rstrip("/")
    if not path.startswith(prefix + "/"):
        return None
    match = _CLUSTER_PATH.match(path[len(prefix) :])
    return match.group(1) if match else None


def cluster_key(secret: str, cluster: str) -> str:
    """The key ``cluster``'s gate asks for (:mod:`pangeohub.dask_gate`): derived from the
    hub's ``secret`` (hex), so the guard and the gateway agree without sharing a list, and
    a person who reads their own cluster's key learns nothing of another's."""
    return hmac.new(bytes.fromhex(secret), cluster.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verdict:
    """The answer for one request: 200 lets it through; otherwise what the person sees."""

    status: int
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = Verdict(200)
SIGN_IN = Verdict(401, "Sign in to the hub to see this Dask dashboard.")


class DashboardGuard(Configurable):
    """Dask dashboards for their owner and admins only (``c.DashboardGuard``)."""

    enabled = Bool(
        True,
        help="""Let only a cluster's owner and the hub's admins, signed in through the
        hub, see its Dask dashboard (every path under <gateway>/clusters/<name>/,
        websockets included). False: dashboards are open to anyone with the link, as in
        dask-gateway itself.""",
    ).tag(config=True)
    admins_see_all = Bool(
        True,
        help="Whether the hub's admins may see every user's dashboards.",
    ).tag(config=True)
    service_name = Unicode(
        "dask-dashboards",
        help="""Name of the hub-managed service that guards the dashboards (one machine),
        or serves the traefik forwardAuth endpoint (Kubernetes).""",
    ).tag(config=True)
    port = Int(
        min=1,
        max=65535,
        help="Loopback port the guard listens on; default: a free one, chosen at start.",
    ).tag(config=True)
    ip = Unicode(
        "127.0.0.1",
        help="""Address the guard listens on. On Kubernetes, where traefik calls the
        forwardAuth endpoint from another pod, ``0.0.0.0`` (and open the port to traefik
        only: docs/dask-gateway.md).""",
    ).tag(config=True)
    upstream = Unicode(
        help="""Where the guard sends allowed requests: the gateway's HTTP proxy, e.g.
        http://127.0.0.1:<port>. Empty: forwardAuth only (traefik sends them on).""",
    ).tag(config=True)
    gateway_api = Unicode(
        help="The gateway's address for ownership checks (its API, with the prefix).",
    ).tag(config=True)
    prefix = Unicode(
        "/services/dask-gateway",
        help="URL prefix of the gateway as browsers see it (dashboards are under it).",
    ).tag(config=True)
    cache_seconds = FiniteFloat(
        10,
        min=0,
        help="""Seconds the hub's answer about a person's token, and the gateway's about
        their cluster, are each kept, so a dashboard's many requests do not each ask.
        Someone who loses access loses the dashboard within twice this time.""",
    ).tag(config=True)
    request_timeout = FiniteFloat(
        10, min=0.1, help="Seconds to wait for the gateway's ownership answer."
    ).tag(config=True)

    @default("port")
    def _default_port(self):
        return hub_ports().dashboard_guard

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # (token digest, cluster) -> (the gateway's verdict, when it was given)
        self._cache: dict[tuple[str, str], tuple[Verdict, float]] = {}

    # --- the decision ----------------------------------------------------------

    async def decide(self, user: dict | None, token: str | None, cluster: str) -> Verdict:
        """May ``user`` (the hub's model, or None) see ``cluster``'s dashboard?

        ``token`` is the person's own hub token (OAuth cookie or API token), with
        which the gateway is asked whether they own the cluster.
        """
        if not user or not token:
            return SIGN_IN
        if user.get("kind", "user") != "user":
            return Verdict(403, "Dask dashboards are for people, not services.")
        if self.admins_see_all and user.get("admin"):
            return ALLOWED
        key = (hashlib.sha256(token.encode()).hexdigest(), cluster)
        cached = self._cache.get(key)
        if cached and time.monotonic() - cached[1] < self.cache_seconds:
            return cached[0]
        verdict = await self._ask_gateway(user["name"], token, cluster)
        if verdict.status in (200, 403, 404):  # not a passing failure of the gateway
            self._remember(key, verdict)
        return verdict

    def _remember(self, key, verdict: Verdict) -> None:
        now = time.monotonic()
        if len(self._cache) > 10000:  # bounded: drop what is stale, then everything
            stale = [k for k, (_, at) in self._cache.items() if now - at >= self.cache_seconds]
            for k in stale:
                del self._cache[k]
            if len(self._cache) > 10000:
                self._cache.clear()
        self._cache[key] = (verdict, now)

    async def _ask_gateway(self, name: str, token: str, cluster: str) -> Verdict:
        url = f"{self.gateway_api.rstrip('/')}/api/v1/clusters/{quote(cluster, safe='')}"
        try:
            await AsyncHTTPClient().fetch(
                url,
                headers={"Authorization": f"jupyterhub {token}"},
                request_timeout=self.request_timeout,
                connect_timeout=self.request_timeout,
            )
            return ALLOWED
        except HTTPClientError as error:
            if error.code == 403:
                return Verdict(
                    403,
                    f"This Dask dashboard belongs to another user's cluster; {name} may see "
                    "only their own (and admins everyone's). Ask its owner for a screenshot.",
                )
            if error.code == 404:
                return Verdict(
                    404,
                    f"There is no Dask cluster {cluster!r} (it may have shut down). "
                    "Start a new one and open its dashboard_link.",
                )
            if error.code == 401:
                return Verdict(
                    403,
                    "Your sign-in does not give access to Dask Gateway on this hub; "
                    "ask an admin if you should have it.",
                )
            return Verdict(502, "Dask Gateway did not answer as expected; try again shortly.")
        except OSError:
            return Verdict(502, "Dask Gateway is not answering; try again shortly.")


def wire_dashboards(c, gateway) -> DashboardGuard | None:
    """Register the guard service for ``gateway`` (a :class:`~.hub.GatewayService`) in
    the hub's configuration ``c`` (part of :func:`pangeohub.configure`).

    On one machine (a managed gateway) the hub then routes the gateway's prefix to the
    guard, which sends on what it allows to dask-gateway's proxy; servers talk to the
    gateway's API through the guard too (``DASK_GATEWAY__ADDRESS``), so a server reaches
    a dashboard only as its person would. Otherwise (Kubernetes) the guard serves the traefik
    ``forwardAuth`` endpoint and the sign-in's callback only.
    """
    import sys

    from ..hubconfig import register_service, write_service_settings
    from ..state import STATE_DIR_ENV, StateDirectory

    guard = DashboardGuard(config=c)
    if not guard.enabled:
        return None
    settings = {k: v for k, v in c.DashboardGuard.items()}
    settings.update(port=guard.port, prefix=gateway.prefix, gateway_api=gateway.internal_address)
    if gateway.managed:  # the hub routes to the guard (GatewayService.service_url's default)
        settings["upstream"] = f"http://127.0.0.1:{gateway.port}"
        StateDirectory.from_env().secret(KEY_SECRET)  # made once, before the services read it
    # The guard signs people in as the gateway's own OAuth client: its cookie is scoped
    # to the gateway's prefix, and the token in it is one the gateway accepts.
    # Its secret is the gateway's token, kept in the settings file (0600, state dir).
    oauth = {"oauth_client_id": f"service-{gateway.service_name}", "api_token": gateway.api_token}
    write_service_settings(guard.service_name, {"DashboardGuard": settings, "HubOAuth": oauth})
    register_service(
        c,
        {
            "name": guard.service_name,
            "command": [sys.executable, "-m", "pangeohub.gateway.dashboard_service"],
            "environment": {STATE_DIR_ENV: str(StateDirectory.from_env().path)},
            "display": False,
        },
    )
    return guard
