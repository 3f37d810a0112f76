"""Issue 13, case 1: leaving every admitted team ends API access too.

The real hub (and proxy, scratch and Dask Gateway services) with github-teams pointed
at the fake GitHub, re-checking membership every second. People sign in as in a
browser, then use personal tokens and their server's own token, as a script would.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.fake_github import FakeGitHub
from tests.hubprocess import HubProcess

from .github_signin import hub_config, sign_in, token_for

pytestmark = pytest.mark.e2e
# long enough that a rate limit ending access is told apart from an outage outlasting it
OUTAGE_GRACE = 20


@pytest.fixture(scope="module")
def github():
    with FakeGitHub() as fake:
        for login in ("alice", "dave", "erin", "bob", "mallory", "oscar"):
            fake.add_user(login)
        fake.add_team("pangeo-data", "climate", members=["alice", "bob", "mallory", "oscar"])
        fake.add_team("pangeo-data", "hub-admins", members=["dave", "erin"])
        yield fake


@pytest.fixture(scope="module")
def hub(github, tmp_path_factory):
    # a re-check failing on GitHub's side keeps access OUTAGE_GRACE s after the last one
    # that succeeded (the default is hours)
    config = (
        hub_config(github) + f"c.GitHubTeamsAuthenticator.outage_grace_seconds = {OUTAGE_GRACE}\n"
    )
    hub = HubProcess(tmp_path_factory.mktemp("access"), extra_config=config)
    hub.start()
    yield hub
    hub.stop()


def call(hub, token, method, path, **kwargs):
    return requests.request(
        method,
        f"{hub.url}/hub/api{path}",
        headers={"Authorization": f"token {token}"},
        timeout=30,
        **kwargs,
    )


def until(condition, what: str, timeout: float = 60):
    """Poll ``condition()`` until it returns a true value (bounded); that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout}s: {what}")


def server_token(hub: HubProcess, user: str) -> str:
    """The token the hub gave ``user``'s running server (read from its environment)."""
    for entry in Path("/proc").iterdir():
        try:
            env = dict(
                item.split("=", 1)
                for item in (entry / "environ").read_text(errors="replace").split("\0")
                if "=" in item
            )
        except OSError:
            continue
        if env.get("PANGEOHUB_TEST_HUB") == hub.marker and env.get("JUPYTERHUB_USER") == user:
            if env.get("JUPYTERHUB_API_TOKEN"):
                return env["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no running server of {user}")


def start(hub, token, user):
    response = call(hub, token, "post", f"/users/{user}/server", json={})
    assert response.status_code in (201, 202), response.text
    until(
        lambda: (
            call(hub, token, "get", f"/users/{user}").json()["servers"].get("", {}).get("ready")
        ),
        f"{user}'s server ready",
    )


def scratch(hub, token):
    url = f"{hub.url}/services/scratch/credentials"
    return requests.get(url, headers={"Authorization": f"token {token}"}, timeout=30)


def gateway(hub, token):
    url = f"{hub.url}/services/dask-gateway/api/v1/clusters/"
    return requests.get(url, headers={"Authorization": f"jupyterhub {token}"}, timeout=30)


def test_removed_from_every_team_loses_tokens_servers_and_scratch(hub, github):
    alice = token_for(hub, sign_in(hub, github, "alice"), "alice")
    erin = token_for(hub, sign_in(hub, github, "erin"), "erin")  # an admin who stays
    member = token_for(hub, sign_in(hub, github, "bob"), "bob")
    # what a member's personal token reaches (alice's is not used there before removal:
    # the services remember a token's owner for a few minutes, see docs/security.md)
    assert scratch(hub, member).status_code == 200
    assert gateway(hub, member).status_code == 200
    start(hub, alice, "alice")
    own = server_token(hub, "alice")
    assert call(hub, own, "get", "/user").status_code == 200

    github.remove_from_team("pangeo-data", "climate", "alice")
    until(
        lambda: call(hub, alice, "get", "/user").status_code == 403,
        "alice's personal token refused after the next re-check",
    )
    assert call(hub, own, "get", "/user").status_code == 403  # the server's own token
    assert call(hub, alice, "post", "/users/alice/servers/again", json={}).status_code == 403
    assert scratch(hub, alice).status_code == 401  # the hub no longer vouches for it
    # the scratch service asked the hub about the server's token at its start; it asks
    # again once its 10 s cache ends
    until(lambda: scratch(hub, own).status_code == 401, "scratch refuses the server's token", 30)
    assert gateway(hub, alice).status_code == 401
    # her running server is stopped, and kept (it can start again if she is re-admitted)
    until(
        lambda: "" not in call(hub, erin, "get", "/users/alice").json()["servers"],
        "alice's server stopped",
    )
    assert "" in call(hub, erin, "get", "/users/alice?include_stopped_servers").json()["servers"]


def test_admin_removed_from_every_team_loses_admin_and_tokens(hub, github):
    dave = token_for(hub, sign_in(hub, github, "dave"), "dave")
    erin = token_for(hub, sign_in(hub, github, "erin"), "erin")
    assert call(hub, dave, "get", "/users").status_code == 200  # an admin's listing

    github.remove_from_team("pangeo-data", "hub-admins", "dave")
    until(lambda: call(hub, dave, "get", "/users").status_code == 403, "dave's token refused")
    assert call(hub, dave, "post", "/users/erin/tokens", json={}).status_code == 403
    assert call(hub, erin, "get", "/users/dave").json()["admin"] is False


def test_github_outage_signs_nobody_out(hub, github):
    bob = token_for(hub, sign_in(hub, github, "bob"), "bob")
    assert call(hub, bob, "get", "/user").status_code == 200
    github.fault("/user", kind="status", status=502, times=1)  # the re-check's first call
    until(
        lambda: call(hub, bob, "get", "/user").status_code == 200 and not github.faults,
        "a re-check during the outage",
    )
    assert call(hub, bob, "get", "/user").json()["groups"] == ["pangeo-data:climate"]


def test_a_rate_limit_of_ones_own_making_ends_access(hub, github):
    """Issue 28, finding 8: removed from the team, mallory keeps her own GitHub quota
    exhausted so that every re-check is rate-limited; her access ends all the same."""
    mallory = token_for(hub, sign_in(hub, github, "mallory"), "mallory")
    assert call(hub, mallory, "get", "/user").status_code == 200
    github.remove_from_team("pangeo-data", "climate", "mallory")
    github.fault("/user", kind="rate_limit")  # her token's quota, used up
    try:
        until(  # at once, not as an outage would, once the grace is over
            lambda: call(hub, mallory, "get", "/user").status_code == 403,
            "a rate-limited re-check ends mallory's token",
            timeout=OUTAGE_GRACE / 2,
        )
        assert call(hub, mallory, "post", "/users/mallory/server", json={}).status_code == 403
    finally:
        github.clear_faults()


def test_a_long_outage_ends_access_after_the_grace(hub, github):
    oscar = token_for(hub, sign_in(hub, github, "oscar"), "oscar")
    assert call(hub, oscar, "get", "/user").status_code == 200
    github.fault("/user", status=502)
    try:
        # kept while GitHub has confirmed him within OUTAGE_GRACE seconds ...
        assert call(hub, oscar, "get", "/user").status_code == 200
        # ... and refused after
        until(
            lambda: call(hub, oscar, "get", "/user").status_code == 403,
            "oscar's token refused once the outage outlasts the grace",
            timeout=OUTAGE_GRACE + 30,
        )
    finally:
        github.clear_faults()
