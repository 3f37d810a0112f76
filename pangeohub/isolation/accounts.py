"""A system account per hub user, created when first needed and reused after."""

from __future__ import annotations

import hashlib
import pwd
import re
import subprocess
import time

# What useradd accepts on Debian by default, at most 32 characters.
_SAFE = re.compile(r"^[a-z][a-z0-9-]*$")
MAX_NAME = 32


def account_name(prefix: str, username: str) -> str:
    """The account for hub user ``username``: ``<prefix><name>``.

    A name that is not lower-case ASCII letters, digits and hyphens (an e-mail address,
    capitals, a very long name) becomes its safe part plus a short hash, so two hub
    users never share an account and every name is one ``useradd`` accepts.
    """
    candidate = prefix + username
    if _SAFE.match(candidate) and len(candidate) <= MAX_NAME and not candidate.endswith("-"):
        return candidate
    digest = hashlib.sha256(username.encode()).hexdigest()[:8]
    safe = re.sub(r"[^a-z0-9]+", "-", username.lower()).strip("-")
    room = MAX_NAME - len(prefix) - len(digest) - 1
    safe = safe[:room].strip("-")
    return f"{prefix}{safe}-{digest}" if safe else f"{prefix}{digest}"


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
