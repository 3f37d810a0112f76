"""Upgrade a hub made by an earlier pangeohub (``pangeohub-admin upgrade``).

With the hub stopped: a backup first (:mod:`.backup`), then JupyterHub's own
``jupyterhub upgrade-db`` (the database schema), then pangeohub's state formats:

- local passwords kept in plain text in ``<state dir>/local-passwords.json`` (before
  0.2) are hashed into the database (NativeAuthenticator's ``users_info``), with the
  groups the configuration gives, and the file is deleted.

Each step is idempotent: running the command again changes nothing more.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jupyterhub import orm
from nativeauthenticator.orm import UserInfo

from ..local_auth import LEGACY_PASSWORDS_FILE, LocalGroupsAuthenticator
from .backup import BackupError, backup
from .hub import Hub


def upgrade(hub: Hub, backup_to: Path, say=print) -> None:
    if hub.pid is not None:
        raise BackupError(f"The hub is running (pid {hub.pid}): stop it before upgrading.")
    backup(hub, backup_to, say=say)
    jupyterhub = Path(sys.executable).with_name("jupyterhub")
    result = subprocess.run(
        [str(jupyterhub), "upgrade-db", f"--JupyterHub.config_file={hub.config_file}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"jupyterhub upgrade-db failed:\n{result.stderr[-2000:]}")
    say("database schema: up to date (jupyterhub upgrade-db)")
    migrated = migrate_local_passwords(hub)
    if migrated:
        say(f"local passwords hashed into the database: {', '.join(migrated)}")
    say(f"upgrade complete; the backup from before it is in {backup_to}")


def migrate_local_passwords(hub: Hub) -> list[str]:
    """Hash an earlier release's plain-text passwords into the database, delete the file."""
    if not (hub.state.path / LEGACY_PASSWORDS_FILE).is_file():
        return []
    db = orm.new_session_factory(hub.db_url)()
    try:
        UserInfo.__table__.create(db.bind, checkfirst=True)
        auth = LocalGroupsAuthenticator(
            config=hub.config,
            state_dir=str(hub.state.path),
            password_terminal="",
            _deprecated_db_session=db,
        )
        names = sorted(auth._legacy_passwords())
        for name in names:
            user = orm.User.find(db, name)
            if user is None:
                user = orm.User(name=name)
                db.add(user)
                db.commit()
            auth.add_user(user)  # makes the account from the legacy password
        return names
    finally:
        db.close()
