"""A person signs in with GitHub in headless Chromium: the real hub (and proxy) with
the github-teams authenticator pointed at the fake GitHub."""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

import pytest

from tests.accounts import github_signin
from tests.chromium import headless_chromium, needs_chromium
from tests.fake_github import FakeGitHub

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    needs_chromium,
]

PROFILES = """
c.PangeoPolicy.profiles = [
    {"display_name": "Small", "slug": "small", "description": "For everyone.",
     "cpu_limit": 1, "mem_limit": "1G", "default": True},
    {"display_name": "Climate Large", "slug": "large", "description": "Climate team only.",
     "cpu_limit": 2, "mem_limit": "2G", "groups": ["pangeo-data:climate"]},
    {"display_name": "Oceans Large", "slug": "oceans", "description": "Oceans team only.",
     "cpu_limit": 2, "mem_limit": "2G", "groups": ["pangeo-data:oceans"]},
]
"""


def hub_config(github: FakeGitHub, refresh_age: int = 3600) -> str:
    return github_signin.hub_config(github, refresh_age) + PROFILES


@pytest.fixture
def browser():
    with headless_chromium() as chromium:
        yield chromium


def sign_in_with_github(browser, hub, github, login, shots: Path, name, button="Authorize"):
    """Open the hub, click "Sign in with GitHub", approve on GitHub; the page after."""
    github.signed_in = login
    page = browser.new_context(viewport={"width": 1100, "height": 800}).new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{hub.url}/hub/login")
    page.screenshot(path=shots / f"{name}-1-login.png")
    page.get_by_text("Sign in with GitHub").click()
    page.wait_for_url(f"{github.url}/login/oauth/authorize*")
    assert f"Signed in to GitHub as {login}" in page.inner_text("body")
    page.screenshot(path=shots / f"{name}-2-github-authorize.png")
    page.get_by_role("button", name=button).click()
    page.wait_for_load_state()
    return page


def test_member_signs_in_sees_team_profiles_and_starts_a_server(
    browser, hub_factory, tmp_path, output_dir
):
    with FakeGitHub() as github:
        github.add_user("alice")
        github.add_team("pangeo-data", "climate", members=["alice"])
        github.add_team("pangeo-data", "hub-admins", members=["alice"])
        github.add_team("pangeo-data", "extra", members=["alice"])
        github.add_team("pangeo-data", "oceans", members=[])
        hub = hub_factory(hub_config(github, refresh_age=2))

        page = sign_in_with_github(browser, hub, github, "alice", output_dir, "member")
        page.wait_for_url(re.compile(r".*/hub/spawn.*"))
        large = page.get_by_role("radio", name=re.compile("Climate Large"))
        large.wait_for()  # the picker (jupyterhub-fancy-profiles) is drawn by its script
        page.screenshot(path=output_dir / "member-3-spawn-page.png")
        profiles = page.inner_text("form")
        assert "Small" in profiles and "Climate Large" in profiles
        assert "Oceans Large" not in profiles

        large.check()
        page.get_by_role("button", name="Start").click()
        page.wait_for_url(re.compile(r".*/user/alice/.*"), timeout=90_000)
        page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
        page.screenshot(path=output_dir / "member-4-server.png")

        me = page.request.get(f"{hub.url}/hub/api/user").json()
        assert me["name"] == "alice" and me["admin"]
        assert sorted(me["groups"]) == [
            "pangeo-data:climate",
            "pangeo-data:extra",
            "pangeo-data:hub-admins",
        ]
        assert me["servers"][""]["user_options"] == {"profile": "large"}
        # the GitHub token is kept in auth state, encrypted with the state dir's crypt key
        with sqlite3.connect(hub.state_dir / "jupyterhub.sqlite") as db:
            (state,) = db.execute(
                "select encrypted_auth_state from users where name='alice'"
            ).fetchone()
        assert state and github.issued_tokens
        assert not any(token.encode() in state for token in github.issued_tokens)

        # removed from two teams on GitHub: the next re-check prunes groups and admin
        github.remove_from_team("pangeo-data", "hub-admins", "alice")
        github.remove_from_team("pangeo-data", "extra", "alice")
        # once past auth_refresh_age, a page load re-checks GitHub
        deadline = time.monotonic() + 30
        while True:
            page.goto(f"{hub.url}/hub/home")
            me = page.request.get(f"{hub.url}/hub/api/user").json()
            if me["groups"] == ["pangeo-data:climate"] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert me["groups"] == ["pangeo-data:climate"] and not me["admin"]

        # removed from the last admitted team: the next spawn rechecks and refuses
        github.remove_from_team("pangeo-data", "climate", "alice")
        page.goto(f"{hub.url}/hub/spawn/alice/second")
        start = page.get_by_role("button", name="Start")
        if start.count():  # else the page load itself was the re-check (a slow machine)
            start.click()
            page.wait_for_load_state()
        page.screenshot(path=output_dir / "member-5-removed-from-team.png")
        body = page.inner_text("body")
        assert "signed in to GitHub as alice" in body and "pangeo-data:climate" in body
        assert "Traceback" not in body
        with sqlite3.connect(hub.state_dir / "jupyterhub.sqlite") as db:
            started = db.execute(
                "select s.name from spawners s join users u on s.user_id = u.id"
                " where u.name = 'alice' and s.server_id is not null"
            ).fetchall()
        assert started == [("",)]  # only the first server; "second" never started
        log = hub.log_tail(10_000)
        for token in github.issued_tokens:
            assert token not in log


def test_non_member_and_github_outage_pages(browser, hub_factory, output_dir):
    with FakeGitHub() as github:
        github.add_user("carol")
        github.add_user("alice")
        github.add_team("pangeo-data", "climate", members=["alice"])
        hub = hub_factory(hub_config(github))

        page = sign_in_with_github(browser, hub, github, "carol", output_dir, "nonmember")
        page.screenshot(path=output_dir / "nonmember-3-explanation.png")
        body = page.inner_text("body")
        assert "403" in body and "Not in an admitted GitHub team" in body
        assert "signed in to GitHub as carol" in body
        assert "pangeo-data:climate" in body and "pangeo-data:oceans" in body
        assert "Traceback" not in body

        page = sign_in_with_github(browser, hub, github, "alice", output_dir, "cancel", "Cancel")
        page.screenshot(path=output_dir / "cancel-3-denied.png")
        assert "denied your application access" in page.inner_text("body")

        github.fault("/user/teams", kind="rate_limit")
        page = sign_in_with_github(browser, hub, github, "alice", output_dir, "outage")
        page.screenshot(path=output_dir / "outage-3-try-again.png")
        body = page.inner_text("body")
        assert "503" in body and "GitHub could not be reached" in body
        assert "try again" in body and "Traceback" not in body
        log = hub.log_tail(10_000)
        assert "Traceback" not in log
        for token in github.issued_tokens:
            assert token not in log
