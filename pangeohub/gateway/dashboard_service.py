"""The dashboard guard: :class:`.dashboard.DashboardGuard`'s decision, wired two ways.

``python -m pangeohub.gateway.dashboard_service`` (a hub-managed service) serves, under
the gateway's prefix (``/services/dask-gateway``):

- ``/oauth_callback``: the end of the hub's sign-in. The guard acts as the gateway's
  own OAuth client (``service-dask-gateway``), so its cookie is scoped to the gateway's
  prefix and the token in it is one the gateway accepts for the ownership check.
- ``/clusters/<name>/...`` (one machine): the decision, then the request (HTTP or
  websocket) sent on to dask-gateway's proxy without the person's cookies or token and
  with the cluster's key, without which its scheduler answers nothing
  (:mod:`pangeohub.dask_gate`).
- ``/_pangeohub/dashboard-auth`` (Kubernetes): the same decision as a traefik
  ``forwardAuth`` endpoint for every request on the gateway's entrypoint, the sign-in's
  callback included (:class:`ForwardAuthHandler`).
- every other path (one machine): sent on to dask-gateway's proxy unchanged (its API
  checks tokens itself).

Why a small proxy of its own rather than jupyter-server-proxy: that one is a Jupyter
server extension (its handlers need a Jupyter server application); here tornado's client
and websocket client do the forwarding, and JupyterHub's ``HubOAuth`` the sign-in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from urllib.parse import parse_qsl, urlencode, urlsplit

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from jupyterhub.utils import url_path_join
from tornado.escape import xhtml_escape
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httputil import parse_qs_bytes, url_concat
from tornado.web import Application, HTTPError, RequestHandler
from tornado.websocket import WebSocketClosedError, WebSocketHandler, websocket_connect
from traitlets.config import Config
from traitlets.config.loader import JSONFileConfigLoader

from ..dask_gate import HEADER as KEY_HEADER
from ..state import StateDirectory
from .dashboard import (
    KEY_SECRET,
    SIGN_IN,
    DashboardGuard,
    Verdict,
    cluster_key,
    cluster_of,
    is_plain,
)

AUTH_ROUTE = "/_pangeohub/dashboard-auth"
READ_ONLY = {"GET", "HEAD", "OPTIONS"}
# Seconds a forwarded request may take: the gateway's API holds some (``?wait``).
FORWARD_TIMEOUT = 300
# Not passed on (RFC 9110 7.6.1), and what tornado sets itself.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}
# What a dashboard (a user's scheduler, user code) never sees of the person's sign-in.
PRIVATE = {"cookie", "authorization"}

log = logging.getLogger("pangeohub.dashboards")

# The hub's own look (its stylesheet, logo and error layout, as its error.html draws them):
# this page comes from the guard, a service, so it cannot render the hub's templates.
HUB_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{status}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{hub}static/css/style.min.css">
<link rel="icon" href="{hub}static/favicon.ico" type="image/x-icon">
</head><body>
<nav class="navbar navbar-expand-sm bg-body-tertiary mb-4"><div class="container-fluid">
<span id="jupyterhub-logo" class="navbar-brand"><a href="{home}">
<img src="{hub}logo" alt="JupyterHub logo" class="jpy-logo" title="Home"></a></span>
</div></nav>
<div id="jupyterhub-main" class="container"><div class="error">
<h1>{status}</h1><p>{message}</p>
<p><a class="btn btn-jupyter" href="{home}">Back to the hub</a></p>
</div></div>
</body></html>
"""


class _AuthFromSettings:
    """The app's ``HubOAuth`` (JupyterHub's handlers default to a singleton), and its
    answers: a short page in the hub's look for a browser, JSON for everything else."""

    page_title = "Dask dashboard"

    def answer(self, status: int, message: str) -> None:
        if "text/html" in self.request.headers.get("Accept", ""):
            self.set_header("Content-Type", "text/html; charset=UTF-8")
            self.finish(hub_page(self.hub_auth.hub_prefix, status, self.page_title, message))
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status, "message": message}))

    @property
    def hub_auth(self) -> HubOAuth:
        return self.settings["hub_auth"]


class CallbackHandler(_AuthFromSettings, HubOAuthCallbackHandler):
    """JupyterHub's end of the sign-in, with the guard's ``HubOAuth``."""


class _HubSigned(_AuthFromSettings, HubOAuthenticated):
    """The person behind a request (cookie or token), and the guard's answers."""

    @property
    def guard(self) -> DashboardGuard:
        return self.settings["guard"]

    def original_method(self) -> str:
        return self.request.method

    def check_xsrf_cookie(self):
        # The hub's cookie signs in only a read-only request (page views, the bokeh
        # websocket, scripts and images); a change needs a token in a header.
        if self.original_method() not in READ_ONLY:
            raise HTTPError(403, "Use an API token (Authorization header) to change anything.")

    async def verdict(self, cluster: str) -> Verdict:
        user = await self.hub_auth.get_user(self, sync=False)
        token = self.hub_auth.get_token(self) if user else None
        return await self.guard.decide(user, token, cluster)

    def wants_page(self) -> bool:
        """A browser's read (a page, or a page's own fetch: the JupyterLab Dask
        extension checks a dashboard from the browser), not a script's nor a websocket:
        send it through the hub's sign-in, which a signed-in browser passes unseen."""
        headers = self.request.headers
        browser = "text/html" in headers.get("Accept", "") or "Sec-Fetch-Mode" in headers
        return (
            browser
            and self.original_method() in ("GET", "HEAD")
            and "Authorization" not in headers
            and headers.get("Upgrade", "").lower() != "websocket"
            and headers.get("Sec-Fetch-Mode") != "websocket"
        )

    def sign_in(self, next_url: str) -> None:
        """Redirect to the hub's sign-in, coming back to ``next_url``."""
        params = {}
        verifier = None
        if self.hub_auth.pkce_enabled:
            verifier, challenge, method = self.hub_auth.generate_pkce_code_challenge()
            params.update(code_challenge=challenge, code_challenge_method=method)
        params["state"] = self.hub_auth.set_state_cookie(
            self, next_url=next_url, code_verifier=verifier
        )
        self.redirect(url_concat(self.hub_auth.login_url, params))

    def refuse(self, verdict: Verdict, next_url: str) -> None:
        if verdict is SIGN_IN and self.wants_page():
            self.sign_in(next_url)
            return
        self.set_status(verdict.status)
        if verdict.status == 401:
            self.set_header("WWW-Authenticate", 'token realm="JupyterHub"')
        self.answer(verdict.status, verdict.message)

    def write_error(self, status_code, **kwargs):
        reason = self._reason
        exc = kwargs.get("exc_info", (None, None))[1]
        if isinstance(exc, HTTPError) and exc.log_message:
            reason = exc.log_message
        self.answer(status_code, reason)


class ForwardAuthHandler(_HubSigned, RequestHandler):
    """traefik ``forwardAuth`` on the gateway's entrypoint: the decision for the request
    that X-Forwarded-* describe (traefik sends on a 2xx, and answers anything else to
    the browser as it is).

    - a dashboard: 200 for its owner and admins, with no ``Cookie`` nor
      ``Authorization`` (the middleware's ``authResponseHeaders``: traefik replaces the
      request's by these, so the scheduler sees no sign-in); else 302/401/403/404;
    - the sign-in's callback (``<prefix>/oauth_callback``): answered here (302 back to
      the dashboard with the guard's cookie), so it needs no route of its own;
    - any other path under the prefix (the gateway's API, which checks tokens itself):
      200 with the request's own ``Cookie`` and ``Authorization``, unchanged.
    """

    def original_method(self) -> str:
        return self.request.headers.get("X-Forwarded-Method", self.request.method).upper()

    async def get(self):
        uri = self.request.headers.get("X-Forwarded-Uri", "")
        parts = urlsplit(uri)
        prefix = self.guard.prefix.rstrip("/")
        if parts.path == prefix + "/oauth_callback":
            await self._callback(parts.query)
            return
        if not (parts.path + "/").startswith(prefix + "/"):
            raise HTTPError(403, f"Only paths under {prefix}/ are answered here.")
        if not is_plain(parts.path):
            raise HTTPError(400, "This path has '.', '..' or encoded parts; use the plain link.")
        cluster = cluster_of(parts.path, prefix)
        if cluster is None:
            for name in ("Cookie", "Authorization"):
                if name in self.request.headers:
                    self.set_header(name, self.request.headers[name])
            self.finish()
            return
        verdict = await self.verdict(cluster)
        if not verdict.allowed:
            self.refuse(verdict, uri)
            return
        self.finish()

    async def _callback(self, query: str) -> None:
        """JupyterHub's callback handler, on the query of the forwarded request."""
        self.request.query = query
        self.request.query_arguments = parse_qs_bytes(query, keep_blank_values=True)
        self.request.arguments = dict(self.request.query_arguments)
        await HubOAuthCallbackHandler.get(self)


class ProxyHandler(_HubSigned, WebSocketHandler):
    """dask-gateway's proxy behind the guard: HTTP and websockets, dashboards checked."""

    upstream_ws = None

    def _target(self) -> str:
        parts = urlsplit(self.request.uri)
        query = parts.query
        if self.cluster is not None and query:  # a ?token= goes no further than here
            query = urlencode([(k, v) for k, v in parse_qsl(query, True) if k != "token"])
        return self.guard.upstream.rstrip("/") + parts.path + ("?" + query if query else "")

    def _upstream_headers(self) -> dict:
        drop = HOP_BY_HOP | {KEY_HEADER.lower()}
        drop |= PRIVATE if self.cluster is not None else set()
        headers = {k: v for k, v in self.request.headers.get_all() if k.lower() not in drop}
        headers["X-Forwarded-For"] = self.request.remote_ip or ""
        if self.cluster is not None:  # allowed (prepare): the cluster's gate opens
            headers[KEY_HEADER] = cluster_key(self.settings["key_secret"], self.cluster)
        return headers

    async def prepare(self):
        if not is_plain(self.request.path):
            raise HTTPError(400, "This path has '.', '..' or encoded parts; use the plain link.")
        self.cluster = cluster_of(self.request.path, self.guard.prefix)
        if self.cluster is None:
            return
        verdict = await self.verdict(self.cluster)
        if not verdict.allowed:
            self.refuse(verdict, self.request.uri)

    async def get(self, *args):
        if self.request.headers.get("Upgrade", "").lower() == "websocket":
            await WebSocketHandler.get(self, *args)
        else:
            await self.forward()

    async def head(self, *args):
        await self.forward()

    post = put = patch = delete = options = head

    async def forward(self):
        body = self.request.body if self.request.method not in ("GET", "HEAD") else None
        request = HTTPRequest(
            self._target(),
            method=self.request.method,
            headers=self._upstream_headers(),
            body=body,
            follow_redirects=False,
            decompress_response=False,
            allow_nonstandard_methods=True,
            request_timeout=FORWARD_TIMEOUT,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError:
            raise HTTPError(502, "Dask Gateway is not answering; try again shortly.") from None
        if response.code == 599:
            raise HTTPError(502, "Dask Gateway is not answering; try again shortly.")
        self.set_status(response.code, response.reason)
        self.clear_header("Content-Type")
        for name, value in response.headers.get_all():
            lower = name.lower()
            # A dashboard (user code) sets no cookie on the hub's origin.
            if lower not in HOP_BY_HOP and not (lower == "set-cookie" and self.cluster):
                self.add_header(name, value)
        if response.body and self.request.method != "HEAD":
            self.write(response.body)
        self.finish()

    # --- websockets --------------------------------------------------------

    def select_subprotocol(self, subprotocols):
        # bokeh asks for ("bokeh", <session token>) and answers "bokeh"; browsers drop a
        # websocket whose answer names none of what they asked.
        return subprotocols[0] if subprotocols else None

    async def open(self, *args):
        target = "ws" + self._target()[len("http") :]
        headers = {
            k: v
            for k, v in self._upstream_headers().items()
            if not k.lower().startswith("sec-websocket")
        }
        asked = self.request.headers.get("Sec-WebSocket-Protocol", "")
        try:
            self.upstream_ws = await websocket_connect(
                HTTPRequest(target, headers=headers, request_timeout=self.guard.request_timeout),
                on_message_callback=self._from_upstream,
                subprotocols=[p.strip() for p in asked.split(",") if p.strip()] or None,
            )
        except (HTTPClientError, OSError):
            self.close(1011, "Dask Gateway is not answering")

    def _from_upstream(self, message) -> None:
        if message is None:
            self.close()
            return
        try:
            self.write_message(message, binary=isinstance(message, bytes))
        except WebSocketClosedError:
            pass

    async def on_message(self, message):
        if self.upstream_ws is not None:
            await self.upstream_ws.write_message(message, binary=isinstance(message, bytes))

    def on_close(self):
        if self.upstream_ws is not None:
            self.upstream_ws.close()


def load_guard(service_name: str) -> tuple[DashboardGuard, HubOAuth]:
    """The guard and its hub sign-in, from ``<state>/services/<service_name>.json``."""
    settings = StateDirectory.from_env().path / "services" / f"{service_name}.json"
    config = Config()
    if settings.exists():
        config.merge(JSONFileConfigLoader(settings.name, path=str(settings.parent)).load_config())
    guard = DashboardGuard(config=config)
    prefix = guard.prefix.rstrip("/")
    hub_auth = HubOAuth(
        config=config,
        base_url=prefix + "/",
        oauth_redirect_uri=prefix + "/oauth_callback",
        cache_max_age=int(guard.cache_seconds),
    )
    return guard, hub_auth


class RootHandler(_AuthFromSettings, RequestHandler):
    """The service's own address (``/services/<name>/``), which the hub checks now and
    then and a person may open: what the gateway is for, in the hub's look."""

    page_title = "Dask Gateway"

    def get(self):
        self.answer(
            200,
            "This is the hub's Dask Gateway. Start a cluster from JupyterLab's Dask tab, or "
            "in a notebook with GatewayCluster() (from dask_gateway): it needs no address.",
        )

    head = get


def hub_page(hub_prefix: str, status: int, title: str, message: str) -> str:
    """A page in the hub's look (its stylesheet, logo and message layout)."""
    hub = xhtml_escape(url_path_join(hub_prefix, ""))
    home = xhtml_escape(url_path_join(hub_prefix, "home"))
    heading = f"{status} : {title}" if status >= 400 else title
    return HUB_PAGE.format(
        status=xhtml_escape(heading), message=xhtml_escape(message), home=home, hub=hub
    )


def make_app(guard: DashboardGuard, hub_auth: HubOAuth) -> Application:
    prefix = guard.prefix.rstrip("/")
    routes = [
        (prefix + "/?", RootHandler),
        (url_path_join(prefix, "oauth_callback"), CallbackHandler),
        (prefix + AUTH_ROUTE, ForwardAuthHandler),
    ]
    if guard.upstream:
        routes.append((prefix + "(/.*)?", ProxyHandler))
    state = StateDirectory.from_env()
    secret = state.secret("dask_dashboards_cookie_secret")
    return Application(
        routes,
        guard=guard,
        hub_auth=hub_auth,
        key_secret=state.secret(KEY_SECRET) if guard.upstream else None,  # one machine
        cookie_secret=bytes.fromhex(secret),
        login_url=hub_auth.login_url,
        log_function=log_request,
        websocket_ping_interval=30,
    )


def log_request(handler) -> None:
    """One line a request, with its path only: a query may hold an OAuth code or a token."""
    status, path = handler.get_status(), handler.request.path
    millis = 1000 * handler.request.request_time()
    log.log(
        log_level(status, path), "%d %s %s %.0fms", status, handler.request.method, path, millis
    )


def log_level(status: int, path: str) -> int:
    """A warning for what went wrong; a 401 from the gateway's API is not that: the
    dask-gateway client asks without its token first and, so challenged, again with it."""
    if status < 400 or (status == 401 and "/api/" in path):
        return logging.INFO
    return logging.WARNING


async def serve(service_name: str) -> None:
    guard, hub_auth = load_guard(service_name)
    server = make_app(guard, hub_auth).listen(guard.port, guard.ip, xheaders=True)
    log.info("Dask dashboards guarded on %s:%s (%s)", guard.ip, guard.port, guard.prefix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # the hub stops its services so
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s %(name)s] %(message)s")
    asyncio.run(serve(os.environ.get("JUPYTERHUB_SERVICE_NAME", "dask-dashboards")))


if __name__ == "__main__":
    main()
