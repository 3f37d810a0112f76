"""A system account per hub user, created when first needed and reused after.

Which account is whose is recorded in the hub's state (:class:`AccountRegistry`): a
hub name maps to one account and an account to one hub name, and a second hub name
whose account would be the same is refused, never given the first one's account.
Each account's uid and gid are recorded too, since the files in its disks carry them: an
account removed since (``userdel``, a rebuilt user database) is made again with them, and
refused, saying what an admin must do, where they now belong to someone else.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import pwd
import re
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

# What useradd accepts on Debian by default, at most 32 characters.
_SAFE = re.compile(r"^[a-z][a-z0-9-]*$")
# The tail of a hashed name: a plain name ending so is hashed too, so it can never be
# another name's hashed account.
_HASHED_TAIL = re.compile(r"(^|-)[0-9a-f]{8}$")
MAX_NAME = 32


class AccountCollision(ValueError):
    """Two hub names would share one account (the message is for the person)."""


class AccountIdConflict(AccountCollision):
    """An account cannot have the uid and gid its files carry: they are someone else's
    now, or it has others (the message is for the person and says what an admin does)."""


def account_name(prefix: str, username: str) -> str:
    """The account for hub user ``username``: ``<prefix><name>``.

    A name that is not lower-case ASCII letters, digits and hyphens (an e-mail address,
    capitals, a very long name), or that ends like a hashed name, becomes its safe part
    plus a short hash of the whole name, so every name is one ``useradd`` accepts and
    a plain name is never another's hashed one (:class:`AccountRegistry` refuses the
    rare hash collision).
    """
    candidate = prefix + username
    if (
        _SAFE.match(candidate)
        and len(candidate) <= MAX_NAME
        and not candidate.endswith("-")
        and not _HASHED_TAIL.search(username)
    ):
        return candidate
    digest = hashlib.sha256(username.encode()).hexdigest()[:8]
    safe = re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")
    room = MAX_NAME - len(prefix) - len(digest) - 1
    safe = safe[:room].strip("-")
    return f"{prefix}{safe}-{digest}" if safe else f"{prefix}{digest}"


class AccountRegistry:
    """Which hub name each account belongs to, and the uid and gid its files carry: a
    SQLite file in the hub's state directory, shared by the hub and its services (each
    claim is one transaction)."""

    _open: dict[str, AccountRegistry] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)
        self._known: dict[str, str] = {}
        with self._transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS accounts ("
                "hub_name TEXT PRIMARY KEY, account TEXT NOT NULL UNIQUE, made REAL NOT NULL)"
            )
            # a table of its own: a row of ``accounts`` keeps the form earlier versions wrote
            db.execute(
                "CREATE TABLE IF NOT EXISTS account_ids ("
                "account TEXT PRIMARY KEY, uid INTEGER NOT NULL, gid INTEGER NOT NULL)"
            )
            _record_existing_ids(db)
        self.path.chmod(0o600)

    @classmethod
    def at(cls, path: Path) -> AccountRegistry:
        """The registry at ``path`` (one object per process and path)."""
        with cls._lock:
            if str(path) not in cls._open:
                cls._open[str(path)] = cls(path)
            return cls._open[str(path)]

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None)

    @contextlib.contextmanager
    def _transaction(self):
        """One writing transaction at a time, across processes."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()

    def claim(self, hub_name: str, account: str) -> str:
        """The account recorded for ``hub_name``; ``account`` recorded if it has none.

        Raises :class:`AccountCollision` if ``account`` is already another hub name's.
        """
        known = self._known.get(hub_name)
        if known is not None:
            return known
        with self._transaction() as db:
            row = db.execute(
                "SELECT account FROM accounts WHERE hub_name = ?", (hub_name,)
            ).fetchone()
            if row is None:
                owner = db.execute(
                    "SELECT hub_name FROM accounts WHERE account = ?", (account,)
                ).fetchone()
                if owner is not None:
                    raise AccountCollision(
                        f"The system account for the hub name {hub_name!r} ({account}) "
                        "already belongs to another person on this hub, so it cannot "
                        "be used. Ask a hub admin to rename one of you."
                    )
                db.execute(
                    "INSERT INTO accounts (hub_name, account, made) VALUES (?, ?, ?)",
                    (hub_name, account, time.time()),
                )
                row = (account,)
        self._known[hub_name] = row[0]
        return row[0]

    def owner(self, account: str) -> str | None:
        """The hub name ``account`` is recorded for, if any."""
        row = self._one("SELECT hub_name FROM accounts WHERE account = ?", account)
        return row[0] if row else None

    def recorded_ids(self, account: str) -> tuple[int, int] | None:
        """The uid and gid recorded for ``account`` (None: not recorded yet); read each
        time, so an admin's change to the record holds without a restart."""
        row = self._one("SELECT uid, gid FROM account_ids WHERE account = ?", account)
        return (row[0], row[1]) if row else None

    def _one(self, query: str, *parameters) -> tuple | None:
        db = self._connect()
        try:
            return db.execute(query, parameters).fetchone()
        finally:
            db.close()

    def ensure(self, account: str, home: str) -> pwd.struct_passwd:
        """The claimed ``account``, made again with its recorded uid and gid if it was
        removed, or made and its ids recorded (:func:`ensure_account`).

        Raises :class:`AccountIdConflict` if it cannot have its recorded ids.
        """
        ids = self.recorded_ids(account)
        entry = ensure_account(account, home, ids)
        if ids is None:
            with self._transaction() as db:
                _record_ids(db, account, entry)
        return entry


def _record_existing_ids(db: sqlite3.Connection) -> None:
    """Every recorded account that exists but has no recorded ids (a registry of an
    earlier version) gets them from the user database."""
    unrecorded = db.execute(
        "SELECT account FROM accounts WHERE account NOT IN (SELECT account FROM account_ids)"
    ).fetchall()
    for (account,) in unrecorded:
        entry = lookup(account)
        if entry is not None:
            _record_ids(db, account, entry)


def _record_ids(db: sqlite3.Connection, account: str, entry: pwd.struct_passwd) -> None:
    db.execute(
        "INSERT OR IGNORE INTO account_ids (account, uid, gid) VALUES (?, ?, ?)",
        (account, entry.pw_uid, entry.pw_gid),
    )


def lookup(name: str) -> pwd.struct_passwd | None:
    """The account ``name``, or None if there is none."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def _run(command: list[str], attempts: int = 20) -> None:
    """Run an account tool, retrying while another one holds /etc/passwd's lock."""
    for attempt in range(attempts):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode == 0:
            return
        if "lock" not in result.stderr or attempt == attempts - 1:
            raise OSError(f"{command[0]} failed ({result.returncode}): {result.stderr.strip()}")
        time.sleep(0.05 * (attempt + 1))


def ensure_account(name: str, home: str, ids: tuple[int, int] | None = None) -> pwd.struct_passwd:
    """The account ``name``, created (no login password, own group) if it does not exist.

    With ``ids`` (the uid and gid the files in its disks carry) it has exactly those: made
    with them, its group first, if it is missing, and :class:`AccountIdConflict` if it has
    others or they belong to another account or group. Idempotent: an account left by an
    earlier run, or made by another hub at the same moment, is reused as it is.
    """
    existing = lookup(name)
    if existing is None:
        if ids is not None:
            _check_uid_free(name, ids[0])
            _ensure_group(name, ids[1])
        try:
            _run(_useradd(name, home, ids))
        except OSError:
            if lookup(name) is None:  # lost a race with another hub: fine if it now exists
                raise
        existing = lookup(name)
        if existing is None:
            raise OSError(f"useradd reported success but there is no account {name}")
    if ids is not None and (existing.pw_uid, existing.pw_gid) != tuple(ids):
        raise AccountIdConflict(
            f"The system account {name} has uid {existing.pw_uid} and gid "
            f"{existing.pw_gid} on this machine, but the files in its disks carry uid "
            f"{ids[0]} and gid {ids[1]}. A hub admin must give it those back (usermod, "
            f"groupmod) or remove it (userdel {name}) for the hub to make it again."
        )
    return existing


def _useradd(name: str, home: str, ids: tuple[int, int] | None) -> list[str]:
    group = ["--user-group"] if ids is None else ["--uid", str(ids[0]), "--gid", str(ids[1])]
    return [
        "useradd", "--no-create-home", "--home-dir", home, "--shell", "/bin/bash",
        *group, "--comment", "pangeohub user", name,
    ]  # fmt: skip


def _check_uid_free(name: str, uid: int) -> None:
    if _account_with_uid(uid) not in (None, name):
        raise AccountIdConflict(
            f"The system account {name} must have uid {uid}, which the files in its disks "
            "carry, but another account has that uid now. A hub admin must renumber or "
            f"remove that account (getent passwd {uid}) before {name} can be made again."
        )


def _ensure_group(name: str, gid: int) -> None:
    """The group ``name`` with ``gid``, made if neither exists."""
    holder = _group_name(gid)
    if holder not in (None, name):
        raise AccountIdConflict(
            f"The system account {name} must have gid {gid}, which the files in its disks "
            "carry, but another group has that gid now. A hub admin must renumber or "
            f"remove that group (getent group {gid}) before {name} can be made again."
        )
    if holder == name:
        return
    other_gid = _group_id(name)
    if other_gid is not None:
        raise AccountIdConflict(
            f"The system account {name} must have gid {gid}, which the files in its disks "
            f"carry, but its group {name} has gid {other_gid} now. A hub admin must give "
            f"the group that gid back (groupmod --gid {gid} {name}) or remove it "
            f"(groupdel {name})."
        )
    try:
        _run(["groupadd", "--gid", str(gid), name])
    except OSError:
        if _group_name(gid) != name:  # lost a race with another hub: fine if it is ours
            raise


def _account_with_uid(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def _group_id(name: str) -> int | None:
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def remove_account(name: str) -> bool:
    """Remove the account ``name`` (not its files); False if it has running processes."""
    if lookup(name) is None:
        return True
    result = subprocess.run(["userdel", name], capture_output=True, text=True, check=False)
    return result.returncode == 0 or lookup(name) is None
