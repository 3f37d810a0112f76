"""Local accounts: made once from configuration, passwords only as hashes, groups the hub's."""

import json
import logging
import os
import select

import pytest
from jupyterhub import orm
from nativeauthenticator.orm import UserInfo

from pangeohub.local_auth import LEGACY_PASSWORDS_FILE, LocalGroupsAuthenticator

USERS = {
    "ada": {"admin": True, "groups": ["Pangeo-Data:Hub-Admins"]},
    "grace": {"groups": ["pangeo-data:climate"]},
}


@pytest.fixture
def db():
    return orm.new_session_factory("sqlite://")()


def make(db, tmp_path, users=USERS, terminal="", **settings):
    """The authenticator as JupyterHub runs it at start: every hub user is added."""
    auth = LocalGroupsAuthenticator(
        users=users,
        state_dir=str(tmp_path),
        password_terminal=terminal,
        bcrypt_rounds=4,
        _deprecated_db_session=db,
        **settings,
    )
    for name in sorted(auth.allowed_users):
        user = orm.User.find(db, name) or orm.User(name=name)
        db.add(user)
        db.commit()
        auth.add_user(user)
    return auth


def read_terminal(master: int) -> str:
    """What a person at the terminal sees (everything written so far)."""
    out = b""
    while select.select([master], [], [], 0.5)[0]:
        out += os.read(master, 4096)
    return out.decode()


def shown_passwords(text: str) -> dict[str, str]:
    lines = [line.split("Sign-in password for ")[1] for line in text.splitlines()]
    return {line.split(" ")[0]: line.rsplit(": ", 1)[1] for line in lines}


def test_passwords_shown_once_kept_only_as_hashes_never_logged(db, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    master, slave = os.openpty()  # the terminal of the person starting the hub
    try:
        auth = make(db, tmp_path, terminal=os.ttyname(slave))
        passwords = shown_passwords(read_terminal(master))
        assert set(passwords) == {"ada", "grace"}
        for name, password in passwords.items():
            info = auth.get_user(name)
            assert info.is_authorized and info.is_valid_password(password)
            assert password.encode() not in info.password
            assert password not in caplog.text
        assert list(tmp_path.iterdir()) == []  # nothing in the state directory
        caplog.clear()
        make(db, tmp_path, terminal=os.ttyname(slave))
        assert read_terminal(master) == ""  # shown once, not at every start
        assert auth.get_user("grace").is_valid_password(passwords["grace"])
    finally:
        os.close(master)
        os.close(slave)


def test_without_a_terminal_the_log_says_how_to_set_one(db, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    make(db, tmp_path, terminal=str(tmp_path / "no-such-tty"))
    assert "pangeohub-admin set-password grace" in caplog.text


def test_groups_are_set_once_then_belong_to_the_hub(db, tmp_path):
    make(db, tmp_path)
    grace = orm.User.find(db, "grace")
    assert [g.name for g in grace.groups] == ["pangeo-data:climate"]
    assert [g.name for g in orm.User.find(db, "ada").groups] == ["pangeo-data:hub-admins"]
    grace.groups = []  # an admin removes her on the admin page
    db.commit()
    auth = make(db, tmp_path)  # the next start
    assert orm.User.find(db, "grace").groups == []
    assert not auth.manage_groups


def test_every_hub_user_gets_an_account_nobody_can_claim(db, tmp_path):
    auth = make(db, tmp_path)
    hedy = orm.User(name="hedy")  # an admin adds her on the admin page
    db.add(hedy)
    db.commit()
    auth.add_user(hedy)
    assert auth.user_exists("hedy")
    assert auth.create_user("hedy", "a long new password") is None


def test_sign_ups_wait_for_approval_even_under_an_admins_name(db, tmp_path):
    auth = make(db, tmp_path, admin_users={"root-admin"})
    assert auth.create_user("root-admin", "correct horse battery").is_authorized is False
    assert auth.create_user("newcomer", "correct horse battery").is_authorized is False
    assert auth.get_authed_users() == {"ada", "grace"}


async def test_sign_in_needs_an_approved_account_and_its_password(db, tmp_path):
    auth = make(db, tmp_path)
    auth.create_user("newcomer", "correct horse battery")
    data = {"username": "newcomer", "password": "correct horse battery"}
    assert await auth.authenticate(None, data) is None
    UserInfo.change_authorization(db, "newcomer")
    assert await auth.authenticate(None, data) == "newcomer"
    assert auth.check_allowed("newcomer")
    assert await auth.authenticate(None, {**data, "password": "guess"}) is None
    assert await auth.authenticate(None, {"username": "mallory", "password": ""}) is None


async def test_refresh_ends_access_of_a_deauthorized_or_deleted_account(db, tmp_path):
    class User:
        name = "grace"

    auth = make(db, tmp_path)
    assert await auth.refresh_user(User()) is True
    UserInfo.change_authorization(db, "grace")
    assert await auth.refresh_user(User()) is False
    User.name = "nobody"
    assert await auth.refresh_user(User()) is False


def test_an_earlier_releases_plain_text_passwords_are_hashed_then_deleted(db, tmp_path, caplog):
    legacy = tmp_path / LEGACY_PASSWORDS_FILE
    legacy.write_text(json.dumps({"ada": "ada-old-password", "grace": "grace-old-password"}))
    auth = make(db, tmp_path, terminal=str(tmp_path / "no-such-tty"))
    assert auth.get_user("ada").is_valid_password("ada-old-password")
    assert auth.get_user("grace").is_valid_password("grace-old-password")
    assert not legacy.exists()
    assert "grace-old-password" not in caplog.text


def test_what_pangeohub_cannot_honour_stops_the_hub():
    from traitlets.config import Config

    from pangeohub.assembly import ConfigurationError, configure

    c = Config()
    c.JupyterHub.authenticator_class = "pangeo-local"
    c.NativeAuthenticator.allow_2fa = True
    with pytest.raises(ConfigurationError, match="allow_2fa is not supported"):
        configure(c)
