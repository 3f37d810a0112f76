"""Launch links on the hub: ``/hub/v2/<provider>/<spec>`` (a page) and
``/hub/api/binder/build/<provider>/<spec>`` (BinderHub's event stream, the REST API).

The page signs the person in first (the hub's own login). For a repository not on the
admin's trusted list it only shows what would be built and from where, and goes on after
the person confirms with a POST (:mod:`.consent`). It then follows the stream: each step,
the build log, a progress bar, and a clear end. The stream resolves the ref,
builds the environment (or reuses the one built for that commit), then starts a named
server of the person's own **through the hub's REST API** with the environment in its
options, so the hub's rules (profile, named-server limit and name rule, disk, scratch,
culling) apply as to any other start; its last event carries the URL to land on.

Bad input is refused before the stream starts, as a 4xx with a message.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from contextlib import aclosing
from urllib.parse import quote, urlencode, urlsplit

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import has_scope
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.iostream import StreamClosedError
from traitlets import Bool, List, Unicode
from traitlets.config import LoggingConfigurable

from ..numbers import FiniteFloat
from ..policy import PangeoPolicy
from .binderhub import binderhub_build
from .builder import BinderBuilder, event
from .consent import TICKET_PARAM, is_trusted, issue_ticket, ticket_allows
from .page import CONFIRM_PAGE, PROGRESS_PAGE
from .spec import LaunchError, RepoSpec, landing_path, parse_spec

OPTION = "binder"  # the key of a launch in a server's user_options


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
        help="The ``binder-launcher`` service's token (it starts servers); set by configure."
    ).tag(config=True)

    _builder: BinderBuilder | None = None

    @property
    def builder(self) -> BinderBuilder:
        if self._builder is None:
            self._builder = BinderBuilder(parent=self)
        return self._builder

    def trusts(self, repo: RepoSpec) -> bool:
        """Whether ``repo``'s launch links may build without asking the person first."""
        return is_trusted(repo.url, self.trusted_repositories)

    def server_name(self, repo: RepoSpec, commit: str) -> str:
        """A server name within the hub's name rule: ``<repo>-<commit>``."""
        limit = PangeoPolicy(parent=self).server_name_max_length
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
    """``/hub/api/binder/build/<provider>/<spec>``: BinderHub's build event stream."""

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
            await self.launch(provider, spec)
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

    async def launch(self, provider: str, spec: str):
        user = self.current_user
        if user is None or getattr(user, "kind", "user") != "user":
            raise web.HTTPError(403, "Sign in as a person to launch a repository.")
        if not has_scope(f"servers!user={user.name}", self.parsed_scopes):
            raise web.HTTPError(403, "This token may not start your servers (it lacks 'servers').")
        self.check_confirmed(user, provider, spec)
        launcher, builder = self.launcher, self.launcher.builder
        if launcher.binderhub_url:
            await self.launch_from_binderhub(user, provider, spec)
            return
        try:
            repo, landing = _launch_request(self, provider, spec)
            builder.check_can_build(user.name)
            commit = await builder.resolve(repo, user.name)
        except LaunchError as error:
            self.refuse(error)
            return
        self.set_header("Cache-Control", "no-cache")
        asyncio.ensure_future(self.keepalive())
        started = time.monotonic()
        await self.send(
            event("resolved", f"{repo.display} is commit {commit[:12]}.", 3, commit=commit)
        )
        builder.in_use_hook = self.keys_in_use
        key = None
        async with aclosing(builder.build(repo, commit, user.name)) as build:
            async for item in build:
                if item["phase"] == "failed":
                    await self.send(item)
                    return
                if item["phase"] == "built":
                    key = item["environment"]
                await self.send(item)
        builder.mark_used(key)
        name = launcher.server_name(repo, commit)
        option = {"environment": key, "repository": repo.url, "ref": repo.ref, "commit": commit}
        await self.start_and_open(user, name, option, landing, started)

    async def start_and_open(self, user, name: str, option: dict, landing: str, started: float):
        """Start the launched server (the person's chosen profile, if any) and send where
        to open it, or why it did not start."""
        await self.send(event("launching", f"Starting your server {name!r}.", 70, server=name))
        options = {OPTION: option}
        if self.get_argument("profile", ""):
            options["profile"] = self.get_argument("profile")
        failure = await self.start_server(user, name, options)
        if failure:
            await self.send(event("failed", failure, 100))
            return
        url = f"{user.url}{quote(name)}/{landing}"
        elapsed = time.monotonic() - started
        await self.send(
            event(
                "ready",
                f"Your server is ready ({elapsed:.1f} s); opening it.",
                100,
                url=url,
                server=name,
                seconds=round(elapsed, 2),
            )
        )

    async def launch_from_binderhub(self, user, provider: str, spec: str):
        """On Kubernetes: BinderHub builds (or finds) the image, the hub starts it.

        The stream opens only once BinderHub has resolved the ref: its refusal (unknown
        provider, missing ref, ...) is answered as a 4xx like any other bad input."""
        launcher = self.launcher
        try:
            repo, landing = _launch_request(self, provider, spec)
        except LaunchError as error:
            self.refuse(error)
            return
        started = time.monotonic()
        # The person's own token for this request: BinderHub sees who builds.
        scope = f"access:services!service={launcher.binderhub_service}"
        try:
            token = user.new_api_token(note="binder build", expires_in=3600, scopes=[scope])
        except ValueError:
            self.refuse(
                LaunchError(
                    403,
                    f"You may not use this hub's BinderHub: a hub admin must give people the "
                    f"scope {scope} (binderhub-service's set-up does).",
                )
            )
            return
        try:
            image = await self.follow_binderhub(provider, token)
        finally:
            self.revoke(token)  # a build-only request: BinderHub needs it no longer
        if image is None:
            return
        tag = image.rsplit(":", 1)[-1] if ":" in image else image
        name = launcher.server_name(repo, re.sub(r"[^a-z0-9]", "", tag.lower()) or "image")
        option = {"image": image, "repository": repo.url, "ref": repo.ref}
        await self.start_and_open(user, name, option, landing, started)

    async def follow_binderhub(self, provider: str, token: str) -> str | None:
        """Pass BinderHub's events on; the image it reports, or None when it failed (a
        refusal before the build answered as a 4xx, a build failure as a ``failed`` event)."""
        launcher = self.launcher
        raw_spec = self.request.path.split("/api/binder/build/", 1)[1].split("/", 1)[1]
        build = binderhub_build(
            launcher.binderhub_url, provider, raw_spec, token, launcher.builder.timeout
        )
        image = None
        async with aclosing(build):
            async for item in build:
                if not self._headers_written:
                    if item["phase"] == "failed" and item.get("status"):
                        self.refuse(LaunchError(item["status"], item["message"]))
                        return None
                    self.set_header("Cache-Control", "no-cache")
                    asyncio.ensure_future(self.keepalive())
                item.pop("status", None)
                await self.send(item)
                if item["phase"] == "failed":
                    return None
                if item["phase"] == "built":
                    image = item["image"]
        if not image:
            message = "BinderHub ended the build without naming an image. Please try again."
            await self.send(event("failed", message, 100))
        return image

    def revoke(self, token: str) -> None:
        orm_token = orm.APIToken.find(self.db, token)
        if orm_token is not None:
            self.db.delete(orm_token)
            self.db.commit()

    def keys_in_use(self) -> set[str]:
        """Environments that running (or starting) servers use: never evicted."""
        keys = set()
        for user in list(self.users.values()):
            for spawner in list(user.spawners.values()):
                launch = (spawner.user_options or {}).get(OPTION)
                if isinstance(launch, dict) and (spawner.active or spawner.ready):
                    keys.add(str(launch.get("environment")))
        return keys

    async def start_server(self, user, name: str, options: dict) -> str | None:
        """Start ``user``'s server ``name`` through the hub's REST API; None when it is
        ready, else what went wrong, in the hub's own words."""
        spawner = user.spawners.get(name) if name in user.orm_spawners else None
        if spawner is not None and spawner.ready:
            return None  # launched before and still running: land in it again
        client = AsyncHTTPClient()
        request = HTTPRequest(
            f"{self.hub.api_url}/users/{quote(user.name)}/servers/{quote(name)}",
            method="POST",
            body=json.dumps(options),
            headers={
                "Authorization": f"token {self.launcher.service_token}",
                "Content-Type": "application/json",
            },
            request_timeout=60,
        )
        response = await client.fetch(request, raise_error=False)
        if response.code >= 400:
            try:
                return json.loads(response.body)["message"]
            except (ValueError, KeyError, TypeError):
                return f"The hub refused to start the server ({response.code})."
        spawner = user.spawners[name]
        deadline = time.monotonic() + self.launcher.ready_timeout
        while time.monotonic() < deadline:
            if spawner.ready:
                return None
            future = spawner._spawn_future
            if not spawner.pending and future is not None and future.done() and future.exception():
                error = future.exception()
                return (
                    getattr(error, "jupyterhub_message", None)
                    or "The server failed to start; ask a hub admin to look at the hub's log."
                )
            if not spawner.pending and not spawner.active:
                return (
                    "The server stopped while starting; ask a hub admin to look at the hub's log."
                )
            await asyncio.sleep(0.25)
        return f"The server did not become ready within {self.launcher.ready_timeout:g} s."


def launch_handlers(launcher: BinderLauncher) -> list[tuple]:
    """The hub's extra handlers for launch links (prefixed with /hub/ by JupyterHub)."""
    kwargs = {"launcher": launcher}
    return [
        (r"/v2/([^/]+)/(.+)", LaunchPageHandler, kwargs),
        (r"/api/binder/build/([^/]+)/(.+)", BuildAPIHandler, kwargs),
    ]
