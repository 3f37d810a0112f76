"""GitHubTeamsAuthenticator against the fake GitHub, over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from types import SimpleNamespace

import pytest
from oauthenticator.oauth2 import OAuthLogoutHandler, _serialize_state
from tornado import web
from traitlets.config import Config

from pangeohub.auth import UNAVAILABLE, GitHubTeamsAuthenticator

CALLBACK = "http://127.0.0.1:9/hub/oauth_callback"


class Handler:
    """What the authenticator reads from the hub's OAuth callback handler."""

    def __init__(self, code: str = "", verifier: str = "", user=None, token_auth=False):
        self.code = code
        self.verifier = verifier
        self.hub = SimpleNamespace(base_url="/hub/")
        self._jupyterhub_user = user
        self._token_authenticated = token_auth

    def get_argument(self, name, default=None):
        return self.code if name == "code" else default

    def get_state_cookie(self):
        return _serialize_state({"state_id": "s", "code_verifier": self.verifier})


class User:
    """The parts of a hub User that refresh_user reads."""

    def __init__(self, name: str, auth_state: dict):
        self.name = name
        self.auth_state = auth_state

    async def get_auth_state(self):
        return self.auth_state


@pytest.fixture
def make_auth(github, caplog):
    """Authenticators configured against the fake; checks no token reached the logs."""
    caplog.set_level(logging.DEBUG)

    def make(**settings) -> GitHubTeamsAuthenticator:
        c = Config()
        c.GitHubTeamsAuthenticator.github_url = github.url
        c.GitHubTeamsAuthenticator.client_id = github.client_id
        c.GitHubTeamsAuthenticator.client_secret = github.client_secret
        c.GitHubTeamsAuthenticator.oauth_callback_url = CALLBACK
        c.GitHubTeamsAuthenticator.admitted_teams = {"pangeo-data:climate"}
        c.GitHubTeamsAuthenticator.admin_teams = {"pangeo-data:hub-admins"}
        for key, value in settings.items():
            setattr(c.GitHubTeamsAuthenticator, key, value)
        return GitHubTeamsAuthenticator(config=c)

    yield make
    for token in github.issued_tokens + list(github.codes):
        assert token not in caplog.text


async def sign_in(auth, github, login):
    """The OAuth callback step: GitHub approved `login`; the hub finishes sign-in."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    challenge = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    code = github.issue_code(login, CALLBACK, challenge)
    github.codes[code]["scope"] = " ".join(auth.scope)
    return await auth.get_authenticated_user(Handler(code, verifier), None)


def test_defaults_in_admin_words(make_auth, github):
    auth = make_auth(admitted_teams={"Pangeo-Data:Climate", "pangeo-forge"})
    assert auth.admitted_teams == {"pangeo-data:climate", "pangeo-forge"}
    assert {"read:org", "user:email"} <= set(auth.scope)
    assert auth.enable_auth_state and auth.manage_groups and auth.refresh_pre_spawn
    assert auth.auth_refresh_age == 3600
    assert auth.admin_groups == {"pangeo-data:hub-admins"}
    assert auth.github_api == f"{github.url}/api/v3"  # GitHub Enterprise layout
    assert auth.login_service == "GitHub"


@pytest.mark.parametrize(
    "setting, value", [("admitted_teams", {"org/team"}), ("admin_teams", {"pangeo-data"})]
)
def test_bad_team_setting_is_refused(make_auth, setting, value):
    with pytest.raises(ValueError, match=setting):
        make_auth(**{setting: value})


async def test_member_of_admitted_team_signs_in_with_all_teams_as_groups(make_auth, github):
    github.max_per_page = 2  # five teams -> three pages, followed through Link
    github.add_team("Other-Org", "Misc", members=["alice"])
    for n in range(3):
        github.add_team("pangeo-data", f"wg-{n}", members=["alice"])
    model = await sign_in(make_auth(), github, "alice")
    assert model["name"] == "alice"
    assert model["groups"] == sorted(
        ["pangeo-data:climate", "other-org:misc"] + [f"pangeo-data:wg-{n}" for n in range(3)]
    )
    assert model["admin"] is False
    assert model["auth_state"]["github_user"]["email"] == "alice@uni.example.org"
    assert model["auth_state"]["access_token"] in github.issued_tokens
    assert sum(path == "/user/teams" for _, path in github.requests) == 3


async def test_whole_organisation_admits_members_without_a_team(make_auth, github):
    auth = make_auth(admitted_teams={"pangeo-forge"})
    model = await sign_in(auth, github, "bob")
    assert model["name"] == "bob" and model["groups"] == []
    assert ("GET", "/orgs/pangeo-forge/members/bob") in github.requests


async def test_non_member_sees_who_they_are_and_which_teams_admit(make_auth, github):
    with pytest.raises(web.HTTPError) as info:
        await sign_in(
            make_auth(admitted_teams={"pangeo-data:climate", "pangeo-forge"}), github, "carol"
        )
    err = info.value
    assert err.status_code == 403
    assert "signed in to GitHub as carol" in err.jupyterhub_message
    for team in ("pangeo-data:climate", "pangeo-forge", "pangeo-data:hub-admins"):
        assert team in err.jupyterhub_message
    assert f'href="{github.url}/orgs/pangeo-data/teams/climate"' in err.jupyterhub_html_message


async def test_admin_team_member_is_admin_and_admitted(make_auth, github):
    model = await sign_in(make_auth(), github, "dave")
    assert model["admin"] is True
    assert model["groups"] == ["pangeo-data:hub-admins"]


async def test_refresh_syncs_groups_and_revokes_admin_then_access(make_auth, github):
    auth = make_auth()
    github.add_to_team("pangeo-data", "hub-admins", "alice")
    model = await sign_in(auth, github, "alice")
    assert model["admin"] is True
    user = User("alice", model["auth_state"])

    github.remove_from_team("pangeo-data", "hub-admins", "alice")
    github.add_team("pangeo-data", "oceans", members=["alice"])
    refreshed = await auth.refresh_user(user, Handler(user=user))
    assert refreshed["admin"] is False
    assert refreshed["groups"] == ["pangeo-data:climate", "pangeo-data:oceans"]

    github.remove_from_team("pangeo-data", "climate", "alice")
    # in their browser they see why; API requests just lose fresh auth
    with pytest.raises(web.HTTPError) as info:
        await auth.refresh_user(user, Handler(user=user))
    assert info.value.status_code == 403
    assert 'href="/hub/logout"' in info.value.jupyterhub_html_message
    assert await auth.refresh_user(user, Handler(user=user, token_auth=True)) is False
    logout = object.__new__(OAuthLogoutHandler)  # signing out still works
    logout._jupyterhub_user, logout._token_authenticated = user, False
    assert await auth.refresh_user(user, logout) is False
    with pytest.raises(web.HTTPError) as info:  # and signing in again is refused
        await sign_in(auth, github, "alice")
    assert info.value.status_code == 403


async def test_revoked_token_at_refresh_requires_sign_in(make_auth, github):
    auth = make_auth()
    model = await sign_in(auth, github, "alice")
    github.revoke_tokens("alice")
    assert await auth.refresh_user(User("alice", model["auth_state"])) is False


SIGN_IN_FAULTS = {
    "user-502": dict(path="/user", status=502),
    "teams-503": dict(path="/user/teams", status=503),
    "token-500": dict(path="/login/oauth/access_token", status=500),
    "rate-limit": dict(path="/user", kind="rate_limit"),
    "teams-rate-limit": dict(path="/user/teams", kind="rate_limit"),
    "secondary-rate-limit-429": dict(path="/user/teams", status=429),
    "slow-timeout": dict(path="/user/teams", kind="slow", delay=3),
    "bad-token-401": dict(path="/user", status=401),
    "org-check-502": dict(path="/orgs/.*/members/.*", status=502),
}


@pytest.mark.parametrize("fault", SIGN_IN_FAULTS.values(), ids=SIGN_IN_FAULTS.keys())
async def test_github_fault_at_sign_in_shows_try_again_page(make_auth, github, fault):
    auth = make_auth(github_timeout=0.5, admitted_teams={"pangeo-forge"})
    github.fault(**fault)
    with pytest.raises(web.HTTPError) as info:
        await sign_in(auth, github, "bob")
    err = info.value
    assert (err.status_code, err.jupyterhub_message) == (503, UNAVAILABLE)
    assert 'href="/hub/login"' in err.jupyterhub_html_message


async def test_github_unreachable_shows_try_again_page(make_auth, github):
    auth = make_auth()
    github.stop()
    with pytest.raises(web.HTTPError) as info:
        await sign_in(auth, github, "alice")
    assert info.value.status_code == 503


async def test_slow_github_within_timeout_still_signs_in(make_auth, github):
    github.fault("/user/teams", kind="slow", delay=0.3)
    model = await sign_in(make_auth(github_timeout=5), github, "alice")
    assert model["groups"] == ["pangeo-data:climate"]


async def test_expired_code_asks_to_sign_in_again(make_auth, github):
    auth = make_auth()
    with pytest.raises(web.HTTPError) as info:
        await auth.get_authenticated_user(Handler("not-a-code", "v"), None)
    assert info.value.status_code == 400
    assert "Please sign in again" in info.value.jupyterhub_message


async def test_github_outage_at_refresh_keeps_access_for_a_bounded_time(make_auth, github):
    auth = make_auth(outage_grace_seconds=3600)
    model = await sign_in(auth, github, "alice")
    assert model["auth_state"]["verified_at"] > 0  # when GitHub last confirmed her
    user = User("alice", model["auth_state"])
    github.fault("/user/teams", status=502)
    # the person in their browser sees "try again"; they are not signed out
    with pytest.raises(web.HTTPError) as info:
        await auth.refresh_user(user, Handler(user=user))
    assert (info.value.status_code, info.value.jupyterhub_message) == (503, UNAVAILABLE)
    # API requests (e.g. from their running server) keep the last known membership
    assert await auth.refresh_user(user, Handler(user=user, token_auth=True)) is True
    assert await auth.refresh_user(user, None) is True
    # ... for outage_grace_seconds after GitHub last confirmed it, not for ever
    user.auth_state["verified_at"] -= 3601
    assert await auth.refresh_user(user, Handler(user=user, token_auth=True)) is False
    assert await auth.refresh_user(user, None) is False


async def test_rate_limit_at_refresh_ends_access(make_auth, github):
    """Issue 28, finding 8: a person can exhaust their own GitHub quota at will; a
    rate-limited re-check is a refusal, not an outage."""
    auth = make_auth()
    model = await sign_in(auth, github, "alice")
    user = User("alice", model["auth_state"])
    github.fault("/user/teams", kind="rate_limit")
    with pytest.raises(web.HTTPError) as info:
        await auth.refresh_user(user, Handler(user=user))
    assert info.value.status_code == 403
    assert "rate limit" in info.value.jupyterhub_message
    assert await auth.refresh_user(user, Handler(user=user, token_auth=True)) is False
    assert await auth.refresh_user(user, None) is False
    for status in (429, 404, 422):  # GitHub's secondary limit; any other 4xx
        github.clear_faults()
        github.fault("/user/teams", status=status)
        assert await auth.refresh_user(user, None) is False, status


def test_entry_point_names_the_authenticator():
    from importlib.metadata import entry_points

    found = entry_points(group="jupyterhub.authenticators", name="github-teams")
    if not found:
        pytest.skip("github-teams entry point not registered (setup.cfg, reinstall needed)")
    assert next(iter(found)).load() is GitHubTeamsAuthenticator


# --- issue 31: oauthenticator's contracts ---------------------------------------------


async def test_custom_403_message_is_the_refusal_page(make_auth, github):
    """oauthenticator's ``custom_403_message``, when the admin sets it, is what a refused
    person reads (pangeohub's own page is only the default)."""
    message = "This hub is for the climate group: ask in #hub-access to be let in."
    auth = make_auth(custom_403_message=message)
    with pytest.raises(web.HTTPError) as info:
        await sign_in(auth, github, "carol")
    err = info.value
    assert (err.status_code, err.jupyterhub_message) == (403, message)
    assert err.jupyterhub_html_message.startswith("This hub is for the climate group")


async def test_refusal_names_whoever_upstream_settings_admit(make_auth, github):
    """An admin who admits people with oauthenticator's own settings (no admitted_teams)
    sees them on the refusal page, not "(none configured)"; names are counted, not shown."""
    auth = make_auth(
        admitted_teams=set(),
        admin_teams=set(),
        allowed_organizations={"pangeo-forge", "pangeo-data:oceans"},
        allowed_groups={"pangeo-data:climate"},
        allowed_users={"erin", "frank"},
    )
    with pytest.raises(web.HTTPError) as info:
        await sign_in(auth, github, "carol")
    err = info.value
    assert err.status_code == 403
    assert "(none configured)" not in err.jupyterhub_message
    for entry in ("pangeo-forge", "pangeo-data:oceans", "pangeo-data:climate"):
        assert entry in err.jupyterhub_message
    assert "2 GitHub account(s) admitted by name" in err.jupyterhub_message
    assert "erin" not in err.jupyterhub_message and "frank" not in err.jupyterhub_message
    assert f'href="{github.url}/pangeo-forge"' in err.jupyterhub_html_message


async def test_nothing_admitting_says_none_configured(make_auth, github):
    auth = make_auth(admitted_teams=set(), admin_teams=set())
    with pytest.raises(web.HTTPError) as info:
        await sign_in(auth, github, "carol")
    assert "(none configured)" in info.value.jupyterhub_message


async def test_teams_list_refused_is_not_reported_as_github_unreachable(make_auth, github):
    """GitHub answering 404 for /user/teams was reached: the page says what happened."""
    auth = make_auth()
    github.fault("/user/teams", status=404)
    with pytest.raises(web.HTTPError) as info:
        await sign_in(auth, github, "alice")
    err = info.value
    assert err.status_code == 502 and err.jupyterhub_message != UNAVAILABLE
    assert "could not be reached" not in err.jupyterhub_message
    assert "GitHub answered HTTP 404 when this hub asked which teams you are in" in (
        err.jupyterhub_message
    )
    assert "tell this hub's admins" in err.jupyterhub_message
    assert 'href="/hub/login"' in err.jupyterhub_html_message
