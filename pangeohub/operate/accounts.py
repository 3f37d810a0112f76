"""Local accounts from root's shell: set a password (the first admin's under systemd)."""

from __future__ import annotations

import secrets

from jupyterhub import orm
from nativeauthenticator.orm import UserInfo

from ..local_auth import LocalGroupsAuthenticator, hash_password
from .hub import Hub


class AccountError(RuntimeError):
    """The command cannot do this; the message says what to do instead."""


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def set_password(hub: Hub, name: str, password: str) -> None:
    """Store ``password``'s hash for ``name`` (an account made and approved if missing).

    The hub keeps accounts in memory: it must be stopped (an admin on the running hub uses
    ``/hub/change-password/<name>``)."""
    if hub.pid is not None:
        raise AccountError(
            f"The hub is running (pid {hub.pid}): stop it first (systemctl stop pangeohub), "
            f"or as an admin open /hub/change-password/{name} on the running hub."
        )
    auth = LocalGroupsAuthenticator(config=hub.config, add_new_table=False)
    if len(password) < auth.minimum_password_length:
        raise AccountError(f"A password needs at least {auth.minimum_password_length} characters.")
    db = orm.new_session_factory(hub.db_url)()
    try:
        UserInfo.__table__.create(db.bind, checkfirst=True)
        info = UserInfo.find(db, name)
        hashed = hash_password(password, auth.bcrypt_rounds)
        if info is None:
            db.add(UserInfo(username=name, password=hashed, is_authorized=True))
        else:
            info.password = hashed
            info.is_authorized = True
        db.commit()
    finally:
        db.close()
