"""A fake GitHub (Enterprise layout) for tests: OAuth web flow plus the REST calls
oauthenticator's GitHubOAuthenticator makes.

It speaks real HTTP on 127.0.0.1 (random free port) from its own thread, so the real
authenticator, a real hub process and a real browser can all talk to it. Point the
authenticator at it with ``c.GitHubOAuthenticator.github_url = fake.url``
(the API is then served under ``/api/v3``, as on GitHub Enterprise Server).

Users, organisations and teams are set per test; faults are injected on demand::

    fake.add_user("alice")
    fake.add_team("pangeo-data", "climate", members=["alice"])
    fake.fault("/user/teams", status=502)        # every call answers 502
    fake.fault("/user", kind="rate_limit", times=1)
    fake.fault("/user", kind="slow", delay=5)    # a slow answer
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
import re
import secrets
import threading
import time
import zlib
from dataclasses import dataclass, field
from urllib.parse import urlencode

from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

API = r"(?:/api/v3)?"


@dataclass
class Fault:
    """One injected fault, matched against the request path (API prefix removed)."""

    path: str
    kind: str = "status"  # "status" | "rate_limit" | "slow"
    status: int = 502
    delay: float = 0.0
    times: int | None = None  # None: until cleared

    def matches(self, path: str) -> bool:
        return re.fullmatch(self.path, path) is not None


@dataclass
class GitHubUser:
    login: str
    id: int
    name: str
    email: str | None  # public email; None when private
    emails: list[str] = field(default_factory=list)


class FakeGitHub:
    """In-memory GitHub with an HTTP front; use as a context manager or start()/stop()."""

    def __init__(self, client_id: str = "fake-client-id", client_secret: str = "fake-secret"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.max_per_page = 100
        self.users: dict[str, GitHubUser] = {}
        self.org_members: dict[str, set[str]] = {}
        self.public_members: dict[str, set[str]] = {}
        self.teams: dict[tuple[str, str], dict] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # token -> (login, scope)
        self.codes: dict[str, dict] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str]] = []  # (method, path), for assertions
        self.signed_in: str | None = None  # who the browser is "signed in to GitHub" as
        self.port = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ----- state set by tests -----
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_user(self, login: str, email: str | None = None, emails=None) -> GitHubUser:
        user = GitHubUser(
            login=login,
            id=1000 + len(self.users),
            name=login.title(),
            email=email,
            emails=list(emails or [f"{login.lower()}@users.example.org"]),
        )
        self.users[login] = user
        return user

    def add_org_member(self, org: str, login: str, public: bool = False) -> None:
        self.org_members.setdefault(org, set()).add(login)
        if public:
            self.public_members.setdefault(org, set()).add(login)

    def add_team(self, org: str, slug: str, members=(), name: str | None = None) -> None:
        """Create (or replace) a team; members also become organisation members."""
        self.teams[(org, slug)] = {
            "id": 500 + len(self.teams),
            "slug": slug,
            "name": name or slug.replace("-", " ").title(),
            "members": set(members),
        }
        for login in members:
            self.add_org_member(org, login)

    def add_to_team(self, org: str, slug: str, login: str) -> None:
        self.teams[(org, slug)]["members"].add(login)
        self.add_org_member(org, login)

    def remove_from_team(self, org: str, slug: str, login: str) -> None:
        self.teams[(org, slug)]["members"].discard(login)

    def remove_from_org(self, org: str, login: str) -> None:
        self.org_members.get(org, set()).discard(login)
        self.public_members.get(org, set()).discard(login)
        for (team_org, _), team in self.teams.items():
            if team_org == org:
                team["members"].discard(login)

    def revoke_tokens(self, login: str | None = None) -> None:
        """Invalidate issued tokens (all, or one user's): the API then answers 401."""
        with self._lock:
            for token, (owner, _) in list(self.tokens.items()):
                if login is None or owner == login:
                    del self.tokens[token]

    def fault(self, path: str, kind: str = "status", status: int = 502, delay=0.0, times=None):
        """Inject a fault for paths matching the regex `path` (e.g. "/user", "/user/teams",
        "/login/oauth/access_token", ".*")."""
        self.faults.append(Fault(path, kind, status, delay, times))

    def clear_faults(self) -> None:
        self.faults.clear()

    def issue_code(self, login: str, redirect_uri: str = "", code_challenge: str = "") -> str:
        """What the approve button does: an authorization code for `login`."""
        code = secrets.token_hex(10)
        with self._lock:
            self.codes[code] = {
                "login": login,
                "redirect_uri": redirect_uri,
                "code_challenge": code_challenge,
                "scope": "",
            }
        return code

    @property
    def issued_tokens(self) -> list[str]:
        return list(self.tokens)

    # ----- lifecycle -----
    def start(self) -> FakeGitHub:
        ready = threading.Event()

        def run():
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            sockets = bind_sockets(0, "127.0.0.1")
            self.port = sockets[0].getsockname()[1]
            server = HTTPServer(self._app())
            server.add_sockets(sockets)
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.stop()
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.run_until_complete(asyncio.sleep(0))
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-github", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake GitHub did not start")
        return self

    def stop(self) -> None:
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _app(self) -> web.Application:
        kw = {"gh": self}
        return web.Application(
            [
                (r"/login/oauth/authorize", AuthorizeHandler, kw),
                (r"/login/oauth/access_token", TokenHandler, kw),
                (API + r"/user", UserHandler, kw),
                (API + r"/user/emails", EmailsHandler, kw),
                (API + r"/user/teams", TeamsHandler, kw),
                (API + r"/orgs/([^/]+)/teams/([^/]+)/members/([^/]+)", TeamMemberHandler, kw),
                (API + r"/orgs/([^/]+)/members/([^/]+)", OrgMemberHandler, kw),
                (API + r"/orgs/([^/]+)/public_members/([^/]+)", PublicMemberHandler, kw),
            ]
        )

    # ----- helpers used by handlers -----
    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(path):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self.faults.remove(fault)
                    return fault
        return None


class FakeHandler(web.RequestHandler):
    gh: FakeGitHub

    def initialize(self, gh: FakeGitHub) -> None:
        self.gh = gh

    def check_xsrf_cookie(self) -> None:  # GitHub's own forms are not ours to check
        pass

    def set_default_headers(self) -> None:
        self.set_header("X-RateLimit-Limit", "5000")
        self.set_header("X-RateLimit-Remaining", "4999")
        self.set_header("X-GitHub-Media-Type", "github.v3")

    def send_json(self, data, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(data))

    def api_error(self, status: int, message: str) -> None:
        self.send_json(
            {"message": message, "documentation_url": "https://docs.github.com/rest"}, status
        )

    async def prepare(self) -> None:
        path = re.sub(r"^/api/v3", "", self.request.path)
        self.gh.requests.append((self.request.method, path))
        fault = self.gh._take_fault(path)
        if fault is None:
            return
        if fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        elif fault.kind == "rate_limit":
            self.set_header("X-RateLimit-Remaining", "0")
            self.set_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
            self.api_error(403, "API rate limit exceeded for user ID 1000.")
        else:
            self.set_header("Content-Type", "text/html")
            self.set_status(fault.status)
            self.finish(f"<html><body>GitHub fake: injected {fault.status}</body></html>")

    def api_user(self, scope: str = "") -> GitHubUser | None:
        """The user the Authorization header's token belongs to; answers 401/403 if not."""
        auth = self.request.headers.get("Authorization", "")
        kind, _, token = auth.partition(" ")
        with self.gh._lock:
            entry = self.gh.tokens.get(token) if kind.lower() in ("bearer", "token") else None
        if entry is None:
            self.api_error(401, "Bad credentials")
            return None
        login, granted = entry
        self.set_header("X-OAuth-Scopes", granted.replace(",", ", "))
        if scope and scope not in granted.split(","):
            self.api_error(404 if scope == "user:email" else 403, "Not Found")
            return None
        return self.gh.users[login]


class AuthorizeHandler(FakeHandler):
    """The page a person sees on GitHub: 'Authorize <app>' with Approve/Cancel."""

    def get(self) -> None:
        args = {
            k: self.get_argument(k, "") for k in ("client_id", "redirect_uri", "scope", "state")
        }
        args["code_challenge"] = self.get_argument("code_challenge", "")
        if args["client_id"] != self.gh.client_id:
            self.set_status(404)
            self.finish("<h1>404: unknown OAuth application</h1>")
            return
        login = self.gh.signed_in or ""
        hidden = "".join(
            f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in args.items()
        )
        self.finish(
            "<html><head><title>Authorize application</title></head><body>"
            "<h1>Authorize pangeohub</h1>"
            f"<p>Signed in to GitHub as <b>{html.escape(login)}</b></p>"
            f"<p>pangeohub would like: {html.escape(args['scope'])}</p>"
            f'<form method="post">{hidden}'
            f'<input type="hidden" name="login" value="{html.escape(login)}">'
            '<button type="submit" name="decision" value="approve" id="js-oauth-authorize-btn">'
            "Authorize</button> "
            '<button type="submit" name="decision" value="cancel">Cancel</button>'
            "</form></body></html>"
        )

    def post(self) -> None:
        redirect_uri = self.get_argument("redirect_uri")
        state = self.get_argument("state", "")
        if self.get_argument("decision", "") != "approve":
            query = {"error": "access_denied", "state": state}
            query["error_description"] = "The user has denied your application access."
            self.redirect(f"{redirect_uri}?{urlencode(query)}")
            return
        login = self.get_argument("login")
        if login not in self.gh.users:
            raise web.HTTPError(400, "unknown GitHub user")
        code = self.gh.issue_code(login, redirect_uri, self.get_argument("code_challenge", ""))
        self.gh.codes[code]["scope"] = self.get_argument("scope", "")
        self.redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")


class TokenHandler(FakeHandler):
    """Exchange a code for a token; errors are 200 + {"error": ...} as on GitHub."""

    def post(self) -> None:
        client_id = self.get_argument("client_id", "")
        client_secret = self.get_argument("client_secret", "")
        if (client_id, client_secret) != (self.gh.client_id, self.gh.client_secret):
            return self.oauth_error(
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        with self.gh._lock:
            grant = self.gh.codes.pop(self.get_argument("code", ""), None)
        if grant is None:
            return self.oauth_error(
                "bad_verification_code", "The code passed is incorrect or expired."
            )
        if grant["code_challenge"]:
            verifier = self.get_argument("code_verifier", "").encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).decode()
            if digest.rstrip("=") != grant["code_challenge"]:
                return self.oauth_error("invalid_grant", "The code_verifier does not match.")
        # GitHub grants what was asked (space- or comma-separated), reported comma-separated
        scope = ",".join(
            s for s in re.split(r"[ ,]+", grant["scope"] or "read:org user:email") if s
        )
        token = "gho_" + secrets.token_hex(18)
        with self.gh._lock:
            self.gh.tokens[token] = (grant["login"], scope)
        self.send_json({"access_token": token, "token_type": "bearer", "scope": scope})

    def oauth_error(self, error: str, description: str) -> None:
        self.send_json(
            {
                "error": error,
                "error_description": description,
                "error_uri": "https://docs.github.com",
            }
        )


class UserHandler(FakeHandler):
    def get(self) -> None:
        user = self.api_user()
        if user:
            self.send_json(
                {
                    "login": user.login,
                    "id": user.id,
                    "type": "User",
                    "name": user.name,
                    "email": user.email,
                    "site_admin": False,
                }
            )


class EmailsHandler(FakeHandler):
    def get(self) -> None:
        user = self.api_user(scope="user:email")
        if user:
            emails = [
                {"email": e, "primary": i == 0, "verified": True, "visibility": "private"}
                for i, e in enumerate(user.emails)
            ]
            self.send_json(emails)


class TeamsHandler(FakeHandler):
    """GET /user/teams: paginated, with a Link header like GitHub's."""

    def get(self) -> None:
        user = self.api_user(scope="read:org")
        if not user:
            return
        teams = [
            self.team_json(org, team)
            for (org, _), team in sorted(self.gh.teams.items())
            if user.login in team["members"]
        ]
        per_page = min(int(self.get_argument("per_page", "30")), self.gh.max_per_page)
        page = int(self.get_argument("page", "1"))
        last = max(1, -(-len(teams) // per_page))
        base = f"{self.request.protocol}://{self.request.host}{self.request.path}?per_page="
        links = []
        if page < last:
            links.append(f'<{base}{per_page}&page={page + 1}>; rel="next"')
            links.append(f'<{base}{per_page}&page={last}>; rel="last"')
        if page > 1:
            links.append(f'<{base}{per_page}&page={page - 1}>; rel="prev"')
            links.append(f'<{base}{per_page}&page=1>; rel="first"')
        if links:
            self.set_header("Link", ", ".join(links))
        self.send_json(teams[(page - 1) * per_page : page * per_page])

    def team_json(self, org: str, team: dict) -> dict:
        return {
            "id": team["id"],
            "name": team["name"],
            "slug": team["slug"],
            "privacy": "closed",
            "permission": "pull",
            "parent": None,
            "organization": {"login": org, "id": zlib.crc32(org.encode()) % 100000},
        }


class TeamMemberHandler(FakeHandler):
    def get(self, org: str, slug: str, login: str) -> None:
        if self.api_user(scope="read:org"):
            team = self.gh.teams.get((org, slug))
            if team and login in team["members"]:
                self.set_status(204)
                self.finish()
            else:
                self.api_error(404, "Not Found")


class OrgMemberHandler(FakeHandler):
    """204 member / 404 not; 302 to public_members when the asker is not a member."""

    def get(self, org: str, login: str) -> None:
        asker = self.api_user()
        if not asker:
            return
        members = self.gh.org_members.get(org, set())
        if asker.login not in members:
            self.redirect(self.request.path.replace("/members/", "/public_members/"))
        elif login in members:
            self.set_status(204)
            self.finish()
        else:
            self.api_error(404, "User does not exist or is not a member of the organization")


class PublicMemberHandler(FakeHandler):
    def get(self, org: str, login: str) -> None:
        if login in self.gh.public_members.get(org, set()):
            self.set_status(204)
            self.finish()
        else:
            self.api_error(404, "Not Found")
