"""The scratch credential service: a hub-managed tornado application.

Routes (under ``$JUPYTERHUB_SERVICE_PREFIX``, e.g. ``/services/scratch/``):

- ``GET credentials``: the caller's own prefix URL and credentials (JupyterHub token in
  ``Authorization: token ...``; the token needs ``access:services!service=<name>``).
- ``POST gcs/token``: RFC 8693 token exchange for Google clients (JupyterHub token as
  subject token, a downscoped access token back).
- ``GET health``: backend name and expiry-rule status, no authentication.
- ``GET metrics``: Prometheus counters of credential requests and failures (no user names),
  no authentication.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import signal
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth
from prometheus_client import Counter
from tornado import httpserver, netutil, web
from tornado.ioloop import PeriodicCallback
from traitlets import Instance, Unicode, default
from traitlets.config import Application

from ..hubconfig import class_family
from ..metrics import exposition
from .base import BackendUnavailable, ScratchBackend, ScratchConfigError, backend_class
from .gcs import GCSScratchBackend  # noqa: F401  (pangeohub's backends, for --help-all)
from .local import LocalScratchBackend  # noqa: F401
from .names import UnsafeName
from .s3 import S3ScratchBackend  # noqa: F401
from .settings import SERVICE_CLASSES, ScratchService

_TOKEN = re.compile(r"^[\x21-\x7e]{8,1024}$")

CREDENTIAL_REQUESTS = Counter(
    "pangeohub_scratch_credential_requests",
    "Requests for scratch credentials (plain or by token exchange), by backend.",
    ["backend"],
)
CREDENTIAL_FAILURES = Counter(
    "pangeohub_scratch_credential_failures",
    "Credential requests answered with an error, by backend and HTTP status.",
    ["backend", "status"],
)


class ScratchError(web.HTTPError):
    """An HTTP error whose message is shown to the caller."""

    def __init__(self, status: int, message: str, oauth_error: str = ""):
        super().__init__(status, reason=None)
        self.message = message
        self.oauth_error = oauth_error


class BaseHandler(web.RequestHandler):
    @property
    def service(self) -> ScratchServiceApp:
        return self.settings["scratch_service"]

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code: int, **kwargs):
        error = kwargs.get("exc_info", (None, None))[1]
        if isinstance(error, ScratchError):
            message = error.message
        elif status_code == 405:
            message = "Method not allowed."
        elif status_code == 404:
            message = "Not found."
        else:
            message = "The scratch service failed unexpectedly; an admin can read its log."
        body = {"status": status_code, "message": message}
        if isinstance(error, ScratchError) and error.oauth_error:
            body.update(error=error.oauth_error, error_description=message)
        self.finish(json.dumps(body))

    def header_token(self) -> str:
        """The caller's token, as JupyterHub's own ``HubAuth.get_token`` reads it (the
        ``Authorization`` header; never a cookie)."""
        return (self.service.hub_auth.get_token(self, in_cookie=False) or "").strip()

    async def authenticate(self, token: str) -> str:
        """The name of the user the JupyterHub ``token`` belongs to, or a 401/403/503."""
        service = self.service
        if not token:
            raise ScratchError(
                401,
                "No JupyterHub token: send 'Authorization: token $JUPYTERHUB_API_TOKEN' "
                "(the token of your server, or one from the hub's Token page).",
            )
        if not _TOKEN.match(token):
            raise ScratchError(401, "The JupyterHub token is malformed; send it unchanged.")
        try:
            model = await service.hub_auth.user_for_token(token, sync=False)
        except web.HTTPError:
            raise ScratchError(
                503, "The hub could not be reached to check your token; try again in a minute."
            ) from None
        if not model:
            raise ScratchError(
                401,
                "The hub did not accept this token (expired, revoked or unknown); "
                "get a new one from the hub's Token page or restart your server.",
            )
        if model.get("kind", "user") != "user":
            raise ScratchError(403, "Scratch credentials are issued to users only.")
        scopes = service.access_scopes
        if not service.hub_auth.check_scopes(scopes, model):
            raise ScratchError(
                403,
                f"This token lacks the scope access:services!service={service.service_name}; "
                "use your server's "
                "$JUPYTERHUB_API_TOKEN or request a token with that scope.",
            )
        return model["name"]

    async def issue(self, user: str):
        try:
            return await self.service.store.credentials(user)
        except UnsafeName as error:
            raise ScratchError(400, str(error)) from None
        except BackendUnavailable as error:
            raise ScratchError(503, f"Scratch storage is unavailable: {error}") from None


class CountedHandler(BaseHandler):
    """A credential route: every answer is counted, errors by status."""

    def on_finish(self):
        backend = self.service.store.name
        CREDENTIAL_REQUESTS.labels(backend).inc()
        if self.get_status() >= 400:
            CREDENTIAL_FAILURES.labels(backend, str(self.get_status())).inc()


class CredentialsHandler(CountedHandler):
    async def get(self):
        user = await self.authenticate(self.header_token())
        requested = self.get_argument("user", None)
        if requested is not None and requested != user:
            raise ScratchError(
                403, f"You can only get credentials for your own scratch space ({user})."
            )
        issued = await self.issue(user)
        self.finish(json.dumps(issued.as_json(self.service.store.name, user)))


class TokenExchangeHandler(CountedHandler):
    """RFC 8693 token exchange used by Google's ``external_account`` credentials."""

    def check_xsrf_cookie(self):
        """Token-authenticated API: no cookies, no XSRF."""

    async def post(self):
        from .gcs import ACCESS_TOKEN, TOKEN_EXCHANGE

        if self.service.store.name != "gcs":
            raise ScratchError(404, "This hub's scratch is not on Google Cloud Storage.")
        if self.get_body_argument("grant_type", "") != TOKEN_EXCHANGE:
            raise ScratchError(400, "Only token exchange is supported.", "unsupported_grant_type")
        try:
            user = await self.authenticate(self.get_body_argument("subject_token", ""))
        except ScratchError as error:
            error.oauth_error = "invalid_grant" if error.status_code < 500 else ""
            raise
        issued = await self.issue(user)
        lifetime = int(issued.expiration - self.service.store.now())
        self.finish(
            json.dumps(
                {
                    "access_token": issued.credentials["access_token"],
                    "issued_token_type": ACCESS_TOKEN,
                    "token_type": "Bearer",
                    "expires_in": max(lifetime, 1),
                }
            )
        )


class MetricsHandler(BaseHandler):
    def get(self):
        body, content_type = exposition()
        self.set_header("Content-Type", content_type)
        self.finish(body)


class HealthHandler(BaseHandler):
    def get(self):
        service = self.service
        self.finish(json.dumps({"backend": service.store.name, "expiry": service.expiry_status}))


class ScratchServiceApp(ScratchService, Application):
    """Issues scratch credentials for the caller's own prefix (run by the hub as a service).

    Settings come from ``c.ScratchService`` and the backends' sections of the hub's own
    configuration (the hub writes them to the file given as ``--config``).
    """

    name = "pangeohub-scratch"
    description = __doc__

    # its settings, every backend's (pangeohub's own imported above) and HubAuth's
    classes = [*class_family(SERVICE_CLASSES), HubAuth]
    aliases = {"config": "ScratchServiceApp.config_file", "log-level": "Application.log_level"}

    config_file = Unicode(
        "", help="Configuration file (.py or .json; the hub writes <state>/services/scratch.json)."
    ).tag(config=True)
    store = Instance(ScratchBackend, allow_none=True, help="The backend instance.")
    hub_auth = Instance(HubAuth, allow_none=True, help="Checks callers' JupyterHub tokens.")

    @default("log_level")
    def _default_log_level(self):
        return logging.INFO

    @default("log_format")
    def _default_log_format(self):
        return "[%(levelname)1.1s %(asctime)s.%(msecs).03d %(name)s] %(message)s"

    expiry_status = "pending"
    port = 0
    _server = None
    _periodic = None

    @property
    def access_scopes(self) -> set[str]:
        return set(self.hub_auth.access_scopes) or {f"access:services!service={self.service_name}"}

    def initialize(self, argv=None):
        """Parse the command line, load the config file, and build the backend."""
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        self.store = backend_class(self.backend)(parent=self, log=self.log)
        self.store.check_config()
        if self.hub_auth is None:
            self.hub_auth = HubAuth(parent=self, cache_max_age=self.token_cache_seconds)

    def make_app(self) -> web.Application:
        prefix = self.service_prefix
        return web.Application(
            [
                (prefix + "credentials", CredentialsHandler),
                (prefix + "gcs/token", TokenExchangeHandler),
                (prefix + "health", HealthHandler),
                (prefix + "metrics", MetricsHandler),
                (prefix, HealthHandler),
            ],
            scratch_service=self,
        )

    async def check_expiry(self) -> None:
        """Apply and verify the expiry rule (or sweep); a backend error is logged, not raised."""
        try:
            await self.store.ensure_expiry()
        except BackendUnavailable as error:
            self.expiry_status = f"unverified: {error}"
            self.log.error("Scratch expiry not verified: %s", error)
        except Exception as error:  # never let the periodic check take the service down
            self.expiry_status = "unverified: unexpected error (see the service log)"
            self.log.error("Scratch expiry check failed: %s", type(error).__name__)
        else:
            self.expiry_status = f"verified: {self.store.expiry_days} days"

    async def start_async(self) -> None:
        """Start the backend, check expiry, and listen."""
        await self.store.start()
        await self.check_expiry()
        parsed = urlparse(self.url)
        sockets = netutil.bind_sockets(parsed.port or 0, parsed.hostname or "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = httpserver.HTTPServer(self.make_app(), xheaders=True)
        self._server.add_sockets(sockets)
        self._periodic = PeriodicCallback(self.check_expiry, self.expiry_check_seconds * 1000)
        self._periodic.start()
        self.log.info(
            "Scratch service (%s backend) on %s:%d%s",
            self.store.name,
            parsed.hostname,
            self.port,
            self.service_prefix,
        )

    async def stop_async(self) -> None:
        if self._periodic is not None:
            self._periodic.stop()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
        await self.store.stop()

    def start(self):
        async def run():
            await self.start_async()
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
            await self.stop_async()

        asyncio.run(run())


def main(argv=None) -> None:
    """Entry point: ``python -m pangeohub.scratch.service --config FILE``."""
    app = ScratchServiceApp()
    try:
        app.initialize(argv)
        app.start()
    except ScratchConfigError as error:
        app.log.critical("Scratch configuration error: %s", error)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
