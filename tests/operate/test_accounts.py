"""Local accounts on the machine's hub, as root: sign-up with approval, password changes,
admin-made accounts, groups from JupyterHub's admin API deciding profiles at the next
start (that they hold across a restart, and root's set-password, are checked with the
machine's restart in test_service.py)."""

from __future__ import annotations

import re
import sqlite3
import time

import pytest
import requests

from .conftest import can_sign_in

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a river of 7 rocks"


@pytest.fixture(scope="module")
def hub(machine):
    """The machine's hub (tests/operate/conftest.py): as root, admins ada and chief."""
    return machine.hub


def page_form(hub, session: requests.Session, path: str, data: dict, **kwargs):
    """POST a hub page's form as a browser does (its _xsrf from the page's cookie)."""
    session.get(f"{hub.url}/hub/{path}", timeout=10)
    data = {**data, "_xsrf": session.cookies.get("_xsrf", path="/hub/")}
    return session.post(f"{hub.url}/hub/{path}", data=data, timeout=30, **kwargs)


def sign_up(hub, name: str, password: str = NEW_PASSWORD, confirmation: str | None = None):
    data = {
        "username": name,
        "signup_password": password,
        "signup_password_confirmation": password if confirmation is None else confirmation,
    }
    return page_form(hub, requests.Session(), "signup", data)


def test_sample_passwords_are_shown_once_and_stored_only_as_hashes(hub):
    passwords = hub.passwords()
    assert set(passwords) == {"ada", "grace", "katherine"}
    assert not (hub.state_dir / "local-passwords.json").exists()
    for path in hub.state_dir.rglob("*"):
        if path.is_file() and path.suffix != ".img":
            content = path.read_bytes()
            assert not any(p.encode() in content for p in passwords.values()), path
    with sqlite3.connect(hub.state_dir / "jupyterhub.sqlite") as db:
        hashes = dict(db.execute("select username, password from users_info"))
    assert all(hashes[name].startswith(b"$2b$") for name in passwords)
    assert can_sign_in(hub, "grace", passwords["grace"])


def test_sign_up_waits_for_an_admins_approval(hub):
    assert sign_up(hub, "hopper", confirmation="something else").status_code == 400
    assert sign_up(hub, "hopper", password="short").status_code == 400
    response = sign_up(hub, "hopper")
    assert response.status_code == 200 and "sent to the admin" in response.text
    assert sign_up(hub, "hopper").status_code == 400  # the name is taken now
    assert not can_sign_in(hub, "hopper", NEW_PASSWORD)

    ada = hub.login("ada")
    pending = ada.get(f"{hub.url}/hub/authorize", timeout=10)
    assert pending.status_code == 200 and "hopper" in pending.text
    # A link another site makes the admin's browser open changes nothing.
    forged = ada.get(
        f"{hub.url}/hub/authorize/hopper", headers={"Sec-Fetch-Site": "cross-site"}, timeout=10
    )
    assert forged.status_code == 403
    assert not can_sign_in(hub, "hopper", NEW_PASSWORD)
    approve = ada.get(
        f"{hub.url}/hub/authorize/hopper", headers={"Sec-Fetch-Site": "same-origin"}, timeout=10
    )
    assert approve.status_code == 200
    assert can_sign_in(hub, "hopper", NEW_PASSWORD)


def test_an_admins_name_cannot_be_claimed_by_signing_up(hub):
    # "chief" is in admin_users: the hub made the account at start, with a password
    # nobody knows (the admin sets it), so a sign-up under that name is refused.
    response = sign_up(hub, "chief")
    assert response.status_code == 400 and "already in use" in response.text
    assert not can_sign_in(hub, "chief", NEW_PASSWORD)


def test_people_change_their_own_password_and_admins_set_others(hub):
    password = hub.password("katherine")
    katherine = hub.login("katherine")
    change = {"new_password": NEW_PASSWORD, "new_password_confirmation": NEW_PASSWORD}
    wrong = page_form(hub, katherine, "change-password", {**change, "old_password": "guess"})
    assert wrong.status_code == 400 and "current password was incorrect" in wrong.text
    done = page_form(hub, katherine, "change-password", {**change, "old_password": password})
    assert done.status_code == 200 and "changed successfully" in done.text
    assert not can_sign_in(hub, "katherine", password)
    assert can_sign_in(hub, "katherine", NEW_PASSWORD)

    # An admin adds someone on the admin page (REST API), then sets their password.
    ada = hub.login("ada")
    assert hub.api(ada, "post", "/users/hedy", json={}).status_code == 201
    assert sign_up(hub, "hedy").status_code == 400  # nobody can claim her name
    admin_set = {"new_password": "hedy's first 1", "new_password_confirmation": "hedy's first 1"}
    assert page_form(hub, ada, "change-password/hedy", admin_set).status_code == 200
    assert can_sign_in(hub, "hedy", "hedy's first 1")
    grace = hub.login("grace")
    assert page_form(hub, grace, "change-password/hedy", admin_set).status_code == 403


def test_a_deauthorized_account_loses_its_tokens_too(hub):
    ada = hub.login("ada")
    hopper = hub.login("hopper", NEW_PASSWORD)
    token = hub.api(hopper, "post", "/users/hopper/tokens", json={}).json()["token"]
    headers = {"Authorization": f"token {token}"}
    me = f"{hub.url}/hub/api/user"
    assert requests.get(me, headers=headers, timeout=10).status_code == 200
    ada.get(f"{hub.url}/hub/authorize/hopper", timeout=10)  # toggled off
    # The next refresh (auth_refresh_age is 1 s here) ends the token's access.
    deadline = time.monotonic() + 15
    while requests.get(me, headers=headers, timeout=10).status_code == 200:
        assert time.monotonic() < deadline, "the token still works after the refresh age"
        time.sleep(0.3)
    assert requests.get(me, headers=headers, timeout=10).status_code == 403


def test_groups_from_the_admin_api_decide_profiles_at_the_next_start(hub):
    """(That they hold across a restart is tested with the machine's restart, in
    test_service.py, where root also sets a password from the shell.)"""
    ada = hub.login("ada")
    katherine = hub.login("katherine", NEW_PASSWORD)
    large = {"profile": "large"}
    refused = hub.api(katherine, "post", "/users/katherine/servers/big", json=large)
    assert refused.status_code == 403, refused.text
    group = "/groups/pangeo-data:climate/users"
    assert hub.api(ada, "post", group, json={"users": ["katherine"]}).status_code == 200
    started = hub.api(katherine, "post", "/users/katherine/servers/big", json=large)
    assert started.status_code in (201, 202), started.text
    hub.wait_for_server(katherine, "katherine", "big")
    assert hub.api(katherine, "delete", "/users/katherine/servers/big").status_code in (202, 204)
    hub.wait_for_stop(katherine, "katherine", "big")
    assert not re.search(r"Sign-in password for \w+", hub.log_tail(100_000))
