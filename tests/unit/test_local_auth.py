"""Local sign-in: configured users, generated passwords, groups from configuration."""

import json
import logging
import os
import select
import stat

from pangeohub.local_auth import LocalGroupsAuthenticator

USERS = {
    "ada": {"admin": True, "groups": ["Pangeo-Data:Hub-Admins"]},
    "grace": {"groups": ["pangeo-data:climate"]},
}


def make(tmp_path, users=USERS, terminal=""):
    return LocalGroupsAuthenticator(
        users=users, state_dir=str(tmp_path), password_terminal=terminal
    )


def read_terminal(master: int) -> str:
    """What a person at the terminal sees (everything written so far)."""
    out = b""
    while select.select([master], [], [], 0.5)[0]:
        out += os.read(master, 4096)
    return out.decode()


async def test_passwords_shown_once_on_the_terminal_and_never_logged(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    master, slave = os.openpty()  # the terminal of the person starting the hub
    try:
        auth = make(tmp_path, terminal=os.ttyname(slave))
        path = tmp_path / "local-passwords.json"
        passwords = json.loads(path.read_text())
        assert set(passwords) == {"ada", "grace"}
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        seen = read_terminal(master)
        assert f"grace: {passwords['grace']}" in seen and str(path) in seen
        assert passwords["grace"] not in caplog.text and passwords["ada"] not in caplog.text
        assert "shown on the terminal" in caplog.text and str(path) in caplog.text
        caplog.clear()
        again = make(tmp_path, terminal=os.ttyname(slave))
        assert read_terminal(master) == ""  # shown once, not at every start
        assert again._passwords == auth._passwords
    finally:
        os.close(master)
        os.close(slave)


async def test_without_a_terminal_the_log_names_only_the_file(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    auth = make(tmp_path, terminal=str(tmp_path / "no-such-tty"))
    assert not any(p in caplog.text for p in auth._passwords.values())
    assert "not shown: no terminal" in caplog.text
    assert str(tmp_path / "local-passwords.json") in caplog.text


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
