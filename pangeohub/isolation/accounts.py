"""A system account per hub user, created when first needed and reused after.

Which account is whose is recorded in the hub's state (:class:`AccountRegistry`): a
hub name maps to one account and an account to one hub name, and a second hub name
whose account would be the same is refused, never given the first one's account.
"""

from __future__ import annotations

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
    """Which hub name each account belongs to: a SQLite table in the hub's state
    directory, shared by the hub and its services (each claim is one transaction)."""

    _open: dict[str, AccountRegistry] = {}
    _lock = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)
        self._known: dict[str, str] = {}
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS accounts ("
                "hub_name TEXT PRIMARY KEY, account TEXT NOT NULL UNIQUE, made REAL NOT NULL)"
            )
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

    def claim(self, hub_name: str, account: str) -> str:
        """The account recorded for ``hub_name``; ``account`` recorded if it has none.

        Raises :class:`AccountCollision` if ``account`` is already another hub name's.
        """
        known = self._known.get(hub_name)
        if known is not None:
            return known
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")  # one claim at a time, across processes
            try:
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
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()
        self._known[hub_name] = row[0]
        return row[0]

    def owner(self, account: str) -> str | None:
        """The hub name ``account`` is recorded for, if any."""
        db = self._connect()
        try:
            row = db.execute(
                "SELECT hub_name FROM accounts WHERE account = ?", (account,)
            ).fetchone()
        finally:
            db.close()
        return row[0] if row else None


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


def ensure_account(name: str, home: str) -> pwd.struct_passwd:
    """The account ``name``, created (no login password, own group) if it does not exist.

    Idempotent: an account left by an earlier run, or made by another hub at the same
    moment, is reused as it is.
    """
    existing = lookup(name)
    if existing is not None:
        return existing
    try:
        _run(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                home,
                "--shell",
                "/bin/bash",
                "--user-group",
                "--comment",
                "pangeohub user",
                name,
            ]
        )
    except OSError:
        if lookup(name) is None:  # lost a race with another hub: fine if it now exists
            raise
    account = lookup(name)
    if account is None:
        raise OSError(f"useradd reported success but there is no account {name}")
    return account


def remove_account(name: str) -> bool:
    """Remove the account ``name`` (not its files); False if it has running processes."""
    if lookup(name) is None:
        return True
    result = subprocess.run(["userdel", name], capture_output=True, text=True, check=False)
    return result.returncode == 0 or lookup(name) is None
