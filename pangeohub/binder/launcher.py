"""Launch links on the hub: ``/hub/v2/<provider>/<spec>`` (a page) and
``/hub/api/binder/build/<provider>/<spec>`` (BinderHub's event stream, the REST API).

The page signs the person in first (the hub's own login). For a repository not on the
admin's trusted list it only shows what would be built and from where, and goes on after
the person confirms with a POST (:mod:`.consent`). It then follows the stream: each step,
the build log, a progress bar, and a clear end. The stream checks who asks and passes on
the events of a :class:`~.launch.Launch`: the ref resolved, the environment built (or
reused) here or by BinderHub, then a named server of the person's own started **through
the hub's REST API** with the environment in its options, so the hub's rules (profile,
named-server limit and name rule, disk, scratch, culling) apply as to any other start;
its last event carries the URL to land on.

Bad input is refused before the stream starts, as a 4xx with a message.
"""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import aclosing
from urllib.parse import urlencode, urlsplit

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import has_scope
from tornado import web
from tornado.iostream import StreamClosedError
from traitlets import Bool, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..numbers import FiniteFloat
from ..policy import PangeoPolicy
from ..state import StateDirectory
from .binderhub import BinderHubBuilds
from .builder import BinderBuilder, event
from .consent import TICKET_PARAM, is_trusted, issue_ticket, ticket_allows
from .launch import OPTION, Builds, Launch, LaunchRequest
from .local_builds import LocalBuilds, keys_in_use
from .page import CONFIRM_PAGE, PROGRESS_PAGE
from .spec import LaunchError, RepoSpec, landing_path, parse_spec
from .start import HubAPIStarts

__all__ = ["OPTION", "BinderLauncher", "BuildAPIHandler", "LaunchPageHandler", "launch_handlers"]


SERVICE_TOKEN_SECRET = "binder_service_token"  # in the state directory


class BinderLauncher(LoggingConfigurable):
    """Launch links on the hub (c.BinderLauncher)."""

    enabled = Bool(
        True,
        help="""Serve launch links (``/hub/v2/gh/<org>/<repo>/<ref>``, ``/hub/v2/git/...``)
        and their build API (``/hub/api/binder/build/...``).""",
    ).tag(config=True)

    github_url = Unicode(
        "https://github.com",
        help="Where ``gh/<org>/<repo>`` is fetched from: ``<github_url>/<org>/<repo>``.",
    ).tag(config=True)

    trusted_repositories = List(
        Unicode(),
        help="""Repositories whose launch links build at once, without asking: patterns of
        repository URLs where ``*`` matches within one path segment, e.g.
        ``https://github.com/pangeo-data/*``. A link to any other repository first shows
        what would be built and from where, and builds only after the person confirms.""",
    ).tag(config=True)

    ready_timeout = FiniteFloat(
        300, min=1, help="Seconds a launched server may take to start after its build."
    ).tag(config=True)

    binderhub_url = Unicode(
        "",
        help="""BinderHub's URL (API-only, as binderhub-service runs it, e.g.
        ``http://binderhub-service:8090/services/binder/``): images are built there and
        servers started with KubeSpawner's ``image``. Empty: build on this machine with uv.""",
    ).tag(config=True)

    binderhub_image_prefix = Unicode(
        "",
        help="""The prefix of every image BinderHub pushes (its ``image_prefix``, e.g.
        ``registry.example.org/binder-``); a launch of any other image is refused.""",
    ).tag(config=True)

    binderhub_service = Unicode(
        "binder",
        help="The name of BinderHub's hub service (binderhub-service registers ``binder``).",
    ).tag(config=True)

    service_token = Unicode(
        help="""The ``binder-launcher`` service's token (it starts servers). Default: the
        one generated once in the hub's state directory."""
    ).tag(config=True)

    @default("service_token")
    def _default_service_token(self) -> str:
        return StateDirectory.from_env().secret(SERVICE_TOKEN_SECRET)

    _builder: BinderBuilder | None = None

    @property
    def builder(self) -> BinderBuilder:
        if self._builder is None:
            self._builder = BinderBuilder(parent=self)
        return self._builder

    def launch(self, request: LaunchRequest, hub_api_url: str, users) -> Launch:
        """``request``'s launch: built by BinderHub when ``binderhub_url`` is set, else on
        this machine (never removing what servers of the hub's ``users`` run in), and
        started through the hub's REST API at ``hub_api_url``."""
        if self.binderhub_url:
            builds: Builds = BinderHubBuilds(
                self.binderhub_url, self.binderhub_service, self.builder.timeout
            )
        else:
            builds = LocalBuilds(self.builder, in_use=lambda: keys_in_use(users))
        starts = HubAPIStarts(hub_api_url, self.service_token, self.ready_timeout)
        return Launch(request, builds, starts, self.server_name)

    def trusts(self, repo: RepoSpec) -> bool:
        """Whether ``repo``'s launch links may build without asking the person first."""
        return is_trusted(repo.url, self.trusted_repositories)

    def server_name(self, repo: RepoSpec, commit: str) -> str:
        """A server name within the hub's name rule: ``<repo>-<commit>``, or where the
        rule leaves no room for the repository's name, ``r<commit>`` cut to the limit."""
        limit = PangeoPolicy(parent=self).server_name_max_length
        if limit < 10:
            return f"r{commit}"[:limit]
        base = re.sub(r"[^a-z0-9]+", "-", repo.name.lower()).strip("-")
        if not base or not base[0].isalpha():
            base = f"r-{base}".rstrip("-")
        base = base[: max(limit - 8, 1)].rstrip("-")
        return f"{base}-{commit[:7]}"


def _launch_request(handler, provider: str, spec: str):
    """The repository and landing path this request asks for (or a LaunchError)."""
    launcher: BinderLauncher = handler.launcher
    repo = parse_spec(provider, spec, launcher.github_url)
    landing = landing_path(handler.get_argument("urlpath", ""), handler.get_argument("labpath", ""))
    return repo, landing


class LaunchPageHandler(BaseHandler):
    """``/hub/v2/<provider>/<spec>``: the launch page (sign-in first if needed).

    GET: a trusted repository's build starts at once; any other shows what would be
    built and asks. POST (the confirmation, XSRF-checked by the hub): the build starts."""

    def initialize(self, launcher: BinderLauncher):
        super().initialize()
        self.launcher = launcher

    async def requested_repo(self, provider: str, spec: str) -> RepoSpec | None:
        """The repository the link names; None after answering a bad link with its 4xx."""
        try:
            repo, _ = _launch_request(self, provider, spec)
        except LaunchError as error:
            self.set_status(error.status)
            html = await self.render_template(
                "error.html",
                status_code=error.status,
                status_message="Cannot launch",
                message=error.message,
            )
            self.finish(html)
            return None
        return repo

    async def render_string_template(self, source: str, **values) -> str:
        template = self.settings["jinja2_env"].from_string(source)
        ns = dict(self.template_namespace, xsrf_token=self.xsrf_token.decode("ascii"))
        return await template.render_async(**ns, **values)

    @web.authenticated
    async def get(self, provider: str, spec: str):
        repo = await self.requested_repo(provider, spec)
        if repo is None:
            return
        if self.launcher.trusts(repo):
            await self.progress_page(repo)
            return
        parts = urlsplit(repo.url)
        html = await self.render_string_template(
            CONFIRM_PAGE,
            repository_name=repo.name,
            url=repo.url,
            host=parts.netloc,
            ref=repo.ref,
            profile=self.get_argument("profile", ""),
            action=self.request.uri,
        )
        self.finish(html)

    @web.authenticated
    async def post(self, provider: str, spec: str):
        repo = await self.requested_repo(provider, spec)
        if repo is not None:
            await self.progress_page(repo)

    async def progress_page(self, repo: RepoSpec):
        """The page that follows the build, with a ticket for this person and repository."""
        kept = ("urlpath", "labpath", "profile")
        query = {k: self.get_argument(k) for k in kept if self.get_argument(k, "")}
        query[TICKET_PARAM] = issue_ticket(self, self.current_user.name, repo)
        # A browser's cookie-authenticated API request carries the hub's XSRF token.
        query["_xsrf"] = self.xsrf_token.decode("ascii")
        raw_spec = self.request.path.split("/v2/", 1)[1]  # as sent, still URL-encoded
        stream = f"{self.hub.base_url}api/binder/build/{raw_spec}?{urlencode(query)}"
        html = await self.render_string_template(
            PROGRESS_PAGE, repository=repo.display, stream_url=stream
        )
        self.finish(html)


class BuildAPIHandler(APIHandler):
    """``/hub/api/binder/build/<provider>/<spec>``: the launch's event stream (BinderHub's
    shape). Checks who asks, then streams what :class:`~.launch.Launch` yields."""

    keepalive_interval = 8

    def initialize(self, launcher: BinderLauncher):
        super().initialize()
        self.launcher = launcher
        self._done = asyncio.Event()

    def on_finish(self):
        self._done.set()

    def get_content_type(self):
        return "text/event-stream"

    def refuse(self, error: LaunchError):
        self.set_status(error.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": error.status, "message": error.message}))

    async def send(self, body: dict):
        try:
            self.write(f"data: {json.dumps(body)}\n\n")
            await self.flush()
        except StreamClosedError:
            raise web.Finish() from None

    async def keepalive(self):
        while not self._done.is_set():
            try:
                self.write(":\n\n")
                await self.flush()
            except (StreamClosedError, RuntimeError):
                return
            try:
                await asyncio.wait_for(self._done.wait(), self.keepalive_interval)
            except TimeoutError:
                pass

    async def get(self, provider: str, spec: str):
        try:
            await self.stream(provider, spec)
        except (web.Finish, web.HTTPError):
            raise
        except Exception as error:  # the hub's own fault: said once, no traceback
            self.log.error("Launch of %s/%s failed: %s", provider, spec[:200], type(error).__name__)
            message = "The launch failed on the hub's side; a hub admin can see why in its log."
            if not self._headers_written:
                raise web.HTTPError(500, message) from None
            await self.send(event("failed", message, 100, line=""))

    def check_confirmed(self, user, provider: str, spec: str) -> None:
        """A browser (the hub's cookie) needs the ticket of a confirmed (or trusted)
        launch; an API token with the ``servers`` scope is its holder's own decision."""
        if getattr(self, "_token_authenticated", False):
            return
        try:
            repo, _ = _launch_request(self, provider, spec)
        except LaunchError:
            return  # refused with its own message by the launch
        if not ticket_allows(self, self.get_argument(TICKET_PARAM, ""), user.name, repo):
            raise web.HTTPError(
                403,
                "This launch was not confirmed. Open the launch link "
                f"({self.hub.base_url}v2/{provider}/...) and confirm it there, or call "
                "this API with a token that may start your servers.",
            )

    def requested_launch(self, provider: str, spec: str) -> LaunchRequest:
        """The launch this request asks for, on behalf of the person who may start it."""
        user = self.current_user
        if user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "Sign in as a person to launch a repository.")
        if not has_scope(f"servers!user={user.name}", self.parsed_scopes):
            raise web.HTTPError(403, "This token may not start your servers (it lacks 'servers').")
        self.check_confirmed(user, provider, spec)
        repo, landing = _launch_request(self, provider, spec)
        raw_spec = self.request.path.split("/api/binder/build/", 1)[1].split("/", 1)[1]
        profile = self.get_argument("profile", "")
        return LaunchRequest(user, provider, raw_spec, repo, landing, profile)

    async def stream(self, provider: str, spec: str):
        """The launch's events; a refusal before the first one is a 4xx instead."""
        try:
            request = self.requested_launch(provider, spec)
            launch = self.launcher.launch(request, self.hub.api_url, self.users)
            async with aclosing(launch.events()) as events:
                async for item in events:
                    if not self._headers_written:
                        self.set_header("Cache-Control", "no-cache")
                        asyncio.ensure_future(self.keepalive())
                    await self.send(item)
        except LaunchError as error:
            if not self._headers_written:
                self.refuse(error)
            else:
                await self.send(event("failed", error.message, 100, line=""))


def launch_handlers(launcher: BinderLauncher) -> list[tuple]:
    """The hub's extra handlers for launch links (prefixed with /hub/ by JupyterHub)."""
    kwargs = {"launcher": launcher}
    return [
        (r"/v2/([^/]+)/(.+)", LaunchPageHandler, kwargs),
        (r"/api/binder/build/([^/]+)/(.+)", BuildAPIHandler, kwargs),
    ]
