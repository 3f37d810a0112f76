"""Local sign-in: configured users, generated passwords, groups from configuration."""

import json
import logging
import os
import stat

from pangeohub.local_auth import LocalGroupsAuthenticator

USERS = {
    "ada": {"admin": True, "groups": ["Pangeo-Data:Hub-Admins"]},
    "grace": {"groups": ["pangeo-data:climate"]},
}


def make(tmp_path, users=USERS):
    return LocalGroupsAuthenticator(users=users, state_dir=str(tmp_path))


async def test_passwords_generated_kept_private_and_logged_once(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    auth = make(tmp_path)
    path = tmp_path / "local-passwords.json"
    passwords = json.loads(path.read_text())
    assert set(passwords) == {"ada", "grace"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert passwords["grace"] in caplog.text
    caplog.clear()
    again = make(tmp_path)
    assert passwords["grace"] not in caplog.text  # shown once, not at every start
    assert again._passwords == auth._passwords


async def test_sign_in_gives_groups_and_admin(tmp_path):
    auth = make(tmp_path)
    password = auth._passwords["ada"]
    model = await auth.authenticate(None, {"username": "ada", "password": password})
    assert model == {"name": "ada", "admin": True, "groups": ["pangeo-data:hub-admins"]}
    grace = await auth.authenticate(
        None, {"username": "grace", "password": auth._passwords["grace"]}
    )
    assert grace["admin"] is False and grace["groups"] == ["pangeo-data:climate"]


async def test_wrong_password_or_unknown_user_refused(tmp_path):
    auth = make(tmp_path)
    assert await auth.authenticate(None, {"username": "ada", "password": "guess"}) is None
    assert await auth.authenticate(None, {"username": "mallory", "password": ""}) is None
    assert (
        await auth.authenticate(None, {"username": "grace", "password": auth._passwords["ada"]})
        is None
    )


async def test_allowed_and_admin_users_come_from_config(tmp_path):
    auth = make(tmp_path)
    assert auth.allowed_users == {"ada", "grace"}
    assert auth.admin_users == {"ada"}
    assert auth.manage_groups


async def test_refresh_follows_config(tmp_path):
    class User:
        name = "grace"

    auth = make(tmp_path, {"grace": {"groups": ["pangeo-data:oceans"]}})
    assert (await auth.refresh_user(User()))["groups"] == ["pangeo-data:oceans"]
    removed = make(tmp_path, {"ada": {}})
    assert await removed.refresh_user(User()) is False
