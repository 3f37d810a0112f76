"""Sign-in by GitHub team: teams admit people, become groups, and name admins.

``GitHubTeamsAuthenticator`` (entry point ``github-teams``) is oauthenticator's
``GitHubOAuthenticator`` with settings in an admin's words::

    c.JupyterHub.authenticator_class = "github-teams"
    c.GitHubTeamsAuthenticator.admitted_teams = {"pangeo-data:climate", "pangeo-forge"}
    c.GitHubTeamsAuthenticator.admin_teams = {"pangeo-data:hub-admins"}

Every team a person is in becomes the JupyterHub group ``org:team`` (lower-case),
synced at sign-in and at each refresh. Membership is rechecked every
``auth_refresh_age`` seconds and before every spawn; someone no longer admitted loses
every kind of access at that refresh (:mod:`pangeohub.access`).

What oauthenticator provides is used, with pangeohub's settings as its defaults:
``admitted_teams`` fills ``allowed_groups`` (teams) and ``allowed_organizations``
(organisations), ``admin_teams`` fills ``admin_groups``, teams become groups through
``auth_state_groups_key`` and ``github_timeout`` sets ``http_request_kwargs``. pangeohub
adds its messages, its refresh rule, a bounded team reader and the GitHub-outage mapping.
oauthenticator's own settings keep their meaning: the refusal page lists whoever they admit
(not only ``admitted_teams``) and ``custom_403_message``, when set, replaces its text.
"""

from __future__ import annotations

import json
import re
import time
from html import escape

from jupyterhub.handlers import LogoutHandler
from jupyterhub.utils import url_path_join
from oauthenticator.github import GitHubOAuthenticator
from requests.utils import parse_header_links
from tornado import web
from tornado.httpclient import HTTPClientError
from traitlets import Integer, Set, Unicode, default, validate

from .access import AccessEndsAuthenticator
from .numbers import FiniteFloat

TEAM_RE = re.compile(r"^[a-z0-9][a-z0-9-]*(:[a-z0-9][a-z0-9_.-]*)?$")

UNAVAILABLE = (
    "GitHub could not be reached to confirm who you are and which teams you are in. "
    "Nothing is wrong with your account: please try again in a few minutes."
)


def team_groups(auth_state: dict) -> set[str]:
    """Every team in the auth state becomes the group ``org:team``, lower-case
    (oauthenticator's ``auth_state_groups_key``)."""
    return {
        f"{team['organization']['login']}:{team['slug']}".lower()
        for team in (auth_state or {}).get("teams") or []
    }


class GitHubUnavailable(Exception):
    """GitHub answered 5xx, rate-limited us, timed out or could not be reached."""


class GitHubRateLimited(GitHubUnavailable):
    """GitHub refused the person's token for its rate limit: a sign-in waits, and a
    refresh ends access (a person can exhaust their own quota at will)."""


class GitHubRefusedTeams(HTTPClientError):
    """GitHub answered the list of the person's teams with a 4xx other than a rate
    limit (e.g. 404): GitHub was reached, but would not say which teams they are in."""


def _error(status: int, reason: str, text: str, html: str) -> web.HTTPError:
    """An HTTPError rendered by the hub's error page with our message, no traceback."""
    err = web.HTTPError(status, reason=reason)
    err.jupyterhub_message = text
    err.jupyterhub_html_message = html
    return err


def _rate_limited(resp) -> bool:
    """GitHub's primary (remaining 0) or secondary (429, Retry-After) rate limit."""
    if resp.code == 429:
        return True
    headers = resp.headers
    return resp.code == 403 and (
        headers.get("X-RateLimit-Remaining") == "0" or "Retry-After" in headers
    )


class GitHubTeamsAuthenticator(AccessEndsAuthenticator, GitHubOAuthenticator):
    """Admit people by GitHub team; teams become JupyterHub groups ``org:team``."""

    admitted_teams = Set(
        Unicode(),
        config=True,
        help="""GitHub teams whose members may use this hub, as `org:team` (the team's
        slug, as in https://github.com/orgs/ORG/teams/TEAM), or `org` to admit every
        member of an organisation. Members of `admin_teams` are admitted too.""",
    )
    admin_teams = Set(
        Unicode(),
        config=True,
        help="""GitHub teams (`org:team`) whose members are hub admins. Someone removed
        from all of them loses admin at their next sign-in or refresh.""",
    )
    github_timeout = FiniteFloat(
        10.0,
        min=0.1,
        config=True,
        help="Seconds to wait for each GitHub request before saying GitHub could not be reached.",
    )
    outage_grace_seconds = FiniteFloat(
        6 * 3600,
        min=0,
        config=True,
        help="""How long someone keeps the access GitHub last confirmed while GitHub
        answers their re-check with a server error (5xx) or cannot be reached, counted
        from that last confirmation. Past it their access ends (tokens, servers, new
        starts) until GitHub answers again and they sign in. A rate limit or any other
        4xx answer ends access at once. 0: any failed re-check ends access.""",
    )
    max_team_pages = Integer(
        20,
        min=1,
        config=True,
        help="Most pages of 100 teams read from GitHub per person (bounds the request loop).",
    )

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # username -> when this hub first failed to re-check someone whose auth state
        # records no confirmation (made before it was recorded); dropped once confirmed
        self._unconfirmed_since: dict[str, float] = {}

    @validate("admitted_teams", "admin_teams")
    def _check_teams(self, proposal):
        teams = {t.strip().lower() for t in proposal.value if t.strip()}
        for team in teams:
            if not TEAM_RE.match(team):
                raise ValueError(f"{proposal.trait.name}: {team!r} is not `org` or `org:team`")
            if proposal.trait.name == "admin_teams" and ":" not in team:
                raise ValueError(f"admin_teams: {team!r} must be a team, `org:team`")
        return teams

    @default("login_service")
    def _login_service_default(self):
        return "GitHub"

    @default("scope")
    def _scope_default(self):
        return ["read:org", "user:email"]

    @default("enable_auth_state")
    def _enable_auth_state_default(self):
        return True

    @default("manage_groups")
    def _manage_groups_default(self):
        return True

    @default("populate_teams_in_auth_state")
    def _populate_teams_default(self):
        return True

    @default("auth_refresh_age")
    def _auth_refresh_age_default(self):
        return 3600

    @default("refresh_pre_spawn")
    def _refresh_pre_spawn_default(self):
        return True

    # pangeohub's settings in an admin's words are defaults of oauthenticator's own:
    @default("admin_groups")
    def _admin_groups_default(self):
        return set(self.admin_teams)

    @default("allowed_groups")
    def _allowed_groups_default(self):  # teams: checked against the groups, no extra call
        return {entry for entry in self.admitted_teams if ":" in entry}

    @default("allowed_organizations")
    def _allowed_organizations_default(self):  # whole organisations: a membership check
        return {entry for entry in self.admitted_teams if ":" not in entry}

    @default("auth_state_groups_key")
    def _auth_state_groups_key_default(self):
        return team_groups

    @default("http_request_kwargs")
    def _http_request_kwargs_default(self):
        return {"request_timeout": self.github_timeout, "connect_timeout": self.github_timeout}

    # ----- talking to GitHub -----
    async def fetch(self, req, label="fetching", parse_json=True, **kwargs):
        """oauthenticator's fetch, with GitHub outages turned into GitHubUnavailable."""
        path = req.url.split("?")[0]
        try:
            resp = await super().fetch(req, label=label, parse_json=parse_json, **kwargs)
        except HTTPClientError as e:
            if e.response is not None and _rate_limited(e.response):
                raise GitHubRateLimited(f"rate limit reached from {req.method} {path}") from None
            if e.code >= 500:
                raise GitHubUnavailable(f"HTTP {e.code} from {req.method} {path}") from None
            raise
        except (TimeoutError, OSError) as e:
            raise GitHubUnavailable(f"{type(e).__name__} on {req.method} {path}") from None
        except ValueError:
            raise GitHubUnavailable(f"unreadable answer from {req.method} {path}") from None
        if not parse_json and resp.code >= 500:
            raise GitHubUnavailable(f"HTTP {resp.code} from {req.method} {path}")
        if not parse_json and _rate_limited(resp):
            raise GitHubRateLimited(f"rate limit reached from {req.method} {path}")
        return resp

    async def _paginated_fetch(self, api_url, access_token, token_type):
        """All items of a paginated GitHub list, following `Link: rel="next"` (bounded)."""
        url, items = api_url, []
        headers = self.build_userdata_request_headers(access_token, token_type)
        for _ in range(self.max_team_pages):
            try:
                resp = await self.httpfetch(
                    url,
                    "fetching user teams",
                    parse_json=False,
                    headers=headers,
                    validate_cert=self.validate_server_cert,
                )
            except HTTPClientError as e:
                if 400 <= e.code < 500:
                    raise GitHubRefusedTeams(e.code, f"from GET {url.split('?')[0]}") from None
                raise
            try:
                items += json.loads(resp.body.decode())
            except ValueError:
                raise GitHubUnavailable(f"unreadable answer from GET {url.split('?')[0]}") from None
            links = parse_header_links(resp.headers.get("Link", ""))
            url = next((link["url"] for link in links if link.get("rel") == "next"), None)
            if url is None:
                return items
        self.log.warning("Read only the first %d pages of teams", self.max_team_pages)
        return items

    def build_auth_state_dict(self, token_info, user_info):
        """As oauthenticator's, but GitHub's comma-separated scope is split properly."""
        state = super().build_auth_state_dict(token_info, user_info)
        state["scope"] = [s for s in re.split(r"[ ,]+", token_info.get("scope") or "") if s]
        return state

    async def is_admitted(self, username: str, auth_model: dict) -> bool:
        """oauthenticator's rule: admin, allowed_users, a team in ``allowed_groups`` or
        membership of an organisation in ``allowed_organizations``."""
        return await super().check_allowed(username, auth_model)

    # ----- what JupyterHub calls -----
    async def _authenticate(self, handler, data=None, **kwargs):
        try:
            return await super().authenticate(handler, data, **kwargs)
        except GitHubUnavailable as e:
            self.log.warning("Sign-in failed, GitHub unavailable: %s", e)
        except GitHubRefusedTeams as e:
            self.log.warning("Sign-in failed, GitHub answered HTTP %s %s", e.code, e.message)
            raise self.teams_refused_error(handler, e.code) from None
        except HTTPClientError as e:
            self.log.warning("Sign-in failed, GitHub answered HTTP %s", e.code)
        raise self.unavailable_error(handler)

    async def get_token_info(self, handler, params):
        try:
            return await super().get_token_info(handler, params)
        except web.HTTPError as e:
            # GitHub answered, but without a token (e.g. a code used twice or expired)
            self.log.warning("Sign-in failed, GitHub gave no access token (HTTP %s)", e.status_code)
            retry = self._login_link(handler)
            raise _error(
                400,
                "Sign-in not completed",
                "GitHub did not complete the sign-in (the sign-in link may have expired). "
                "Please sign in again.",
                f"GitHub did not complete the sign-in (the sign-in link may have expired). "
                f"Please {retry}.",
            ) from None

    async def get_authenticated_user(self, handler, data):
        try:
            return await super().get_authenticated_user(handler, data)
        except GitHubUnavailable as e:  # from check_allowed's organisation check
            self.log.warning("Sign-in failed, GitHub unavailable: %s", e)
            raise self.unavailable_error(handler) from None

    async def check_allowed(self, username, auth_model):
        if auth_model is None or await self.is_admitted(username, auth_model):
            return True
        self.log.info("Refused %s: not in an admitted GitHub team", username)
        raise self.not_admitted_error(username)

    async def authenticate(self, handler, data=None, **kwargs):
        model = await self._authenticate(handler, data, **kwargs)
        return self._confirmed(model)

    def _confirmed(self, model):
        """``model`` with the time GitHub last confirmed the person (in the auth state)."""
        if isinstance(model, dict) and isinstance(model.get("auth_state"), dict):
            model["auth_state"]["verified_at"] = time.time()
            self._unconfirmed_since.pop(model.get("name"), None)
        return model

    async def _confirmed_at(self, user) -> float:
        """When GitHub last confirmed ``user`` (or, for an auth state from before that
        was recorded, when this hub first failed to re-check them)."""
        state = await user.get_auth_state() if hasattr(user, "get_auth_state") else None
        at = (state or {}).get("verified_at")
        if isinstance(at, int | float):
            return float(at)
        return self._unconfirmed_since.setdefault(user.name, time.time())

    async def refresh_user(self, user, handler=None, **kwargs):
        """Re-read teams (groups, admin); False (sign in again) if no longer admitted,
        if GitHub refuses the person's token (any 4xx, a rate limit included), or if it
        has been failing for longer than ``outage_grace_seconds``."""
        try:
            model = await super().refresh_user(user, handler, **kwargs)
            if isinstance(model, dict) and not await self.is_admitted(user.name, model):
                self.log.info("%s is no longer in an admitted GitHub team", user.name)
                self.end_access(user)
                if self._interactive(user, handler):
                    raise self.not_admitted_error(user.name, handler)
                return False
            if model is False:
                self.log.info("GitHub no longer accepts %s's sign-in: access ends", user.name)
                self.end_access(user)
            return self._confirmed(model)
        except GitHubRateLimited as e:
            self.log.info("Ending %s's access: GitHub refuses their token (%s)", user.name, e)
            self.end_access(user)
            if self._interactive(user, handler):
                raise self.rate_limited_error(handler) from None
            return False
        except GitHubUnavailable as e:
            unconfirmed = time.time() - await self._confirmed_at(user)
            if unconfirmed > self.outage_grace_seconds:
                self.log.info(
                    "Ending %s's access: GitHub has not confirmed it for %d s (%s)",
                    user.name,
                    unconfirmed,
                    e,
                )
                self.end_access(user)
                if self._interactive(user, handler):
                    raise self.unavailable_error(handler) from None
                return False
            self.log.warning("Could not refresh %s, GitHub unavailable: %s", user.name, e)
            if self._interactive(user, handler):
                raise self.unavailable_error(handler) from None
            return True  # API and cross-user requests keep the last known membership

    # ----- what a person sees -----
    def _interactive(self, user, handler) -> bool:
        """Is this the person themselves, in a browser (cookie), on a page other than logout?"""
        if handler is None or isinstance(handler, LogoutHandler):
            return False
        current = getattr(handler, "_jupyterhub_user", None)
        cookie = not getattr(handler, "_token_authenticated", False)
        return cookie and getattr(current, "name", None) == user.name

    def _login_link(self, handler, text: str = "sign in again") -> str:
        if handler is None:
            return text
        href = url_path_join(handler.hub.base_url, "login")
        return f'<a href="{escape(href)}">{text}</a>'

    def unavailable_error(self, handler) -> web.HTTPError:
        html = f"{escape(UNAVAILABLE)} {self._login_link(handler, 'Sign in again')}."
        return _error(503, "GitHub could not be reached", UNAVAILABLE, html)

    def rate_limited_error(self, handler) -> web.HTTPError:
        text = (
            "GitHub is refusing requests for your account (its rate limit was reached), so "
            "this hub cannot confirm your teams and your access has ended. Sign in again "
            "once GitHub's limit resets (within the hour)."
        )
        html = f"{escape(text)} {self._login_link(handler, 'Sign in again')}."
        return _error(403, "GitHub rate limit reached", text, html)

    def teams_refused_error(self, handler, code: int) -> web.HTTPError:
        """GitHub was reached but would not list the person's teams (HTTP ``code``)."""
        text = (
            f"GitHub answered HTTP {code} when this hub asked which teams you are in, so "
            "your teams could not be checked. GitHub was reached; this is most likely the "
            "hub's GitHub settings (its github_url, or the OAuth app's access to your "
            "organisation): please tell this hub's admins."
        )
        html = f"{escape(text)} {self._login_link(handler, 'Sign in again')}."
        return _error(502, "GitHub did not list your teams", text, html)

    def admitted(self) -> tuple[list[str], int]:
        """Who this hub admits, from every oauthenticator setting that admits people: the
        teams and organisations (``allowed_groups``, ``allowed_organizations``,
        ``admin_groups``) and how many accounts are named (``allowed_users``,
        ``admin_users``; not listed: a refused stranger needs no list of names)."""
        teams = self.allowed_groups | self.allowed_organizations | self.admin_groups
        return sorted(teams), len(self.allowed_users | self.admin_users)

    def not_admitted_error(self, username: str, handler=None) -> web.HTTPError:
        """The refusal page: oauthenticator's ``custom_403_message`` when the admin set
        one, else who is signed in and who this hub admits."""
        teams, named = self.admitted()
        custom = self.custom_403_message != self.trait_defaults("custom_403_message")
        if custom:
            text = self.custom_403_message
            html = escape(text)
        else:
            text, html = self._refusal(username, teams, named)
        if handler is not None:  # signed in to the hub: offer a way out
            href = escape(url_path_join(handler.hub.base_url, "logout"))
            html += f' <a href="{href}">Sign out of this hub</a>.'
        return _error(403, "Not in an admitted GitHub team", text, html)

    def _refusal(self, username: str, teams: list[str], named: int) -> tuple[str, str]:
        """pangeohub's refusal, as (text, html)."""
        who = escape(username)
        named_line = f"{named} GitHub account(s) admitted by name (ask the hub's admins). "
        named_line = named_line if named else ""
        ask = "Ask an owner or maintainer of one of these teams to add you, then sign in again."
        text = (
            f"You are signed in to GitHub as {username}, but {username} is not a member of a "
            "GitHub team that admits people to this hub. Teams and organisations that admit "
            f"people: {', '.join(teams) or '(none configured)'}. {named_line}{ask}"
        )
        items = "".join(f"<li>{self._team_link(team)}</li>" for team in teams)
        html = (
            f"You are signed in to GitHub as <strong>{who}</strong>, but <strong>{who}</strong> "
            "is not a member of a GitHub team that admits people to this hub.</p>"
            "<p>Teams and organisations that admit people:</p>"
            f"<ul>{items or '<li>(none configured)</li>'}</ul><p>{escape(named_line)}{ask} "
            "If you meant to use another GitHub account, sign out of GitHub first."
        )
        return text, html

    def _team_link(self, entry: str) -> str:
        org, _, team = entry.partition(":")
        path = f"orgs/{org}/teams/{team}" if team else org
        url = f"{self.github_url}/{path}"
        return f'<a href="{escape(url)}">{escape(entry)}</a>'
