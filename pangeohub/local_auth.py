"""Local sign-in for the one-machine hub: users and their groups from configuration.

Each configured user gets a password generated on first run, kept (0600) in the
state directory and shown once on the terminal of the person starting the hub, never
in the hub's log (which admins ship to log collectors). Groups
are named like GitHub teams (``org:team``) and synced into JupyterHub groups at
every sign-in and refresh, so the policies read the same groups as with GitHub.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets

from traitlets import Bool, Dict, Unicode, default

from .access import AccessEndsAuthenticator
from .state import StateDirectory

PASSWORDS_FILE = "local-passwords.json"


class LocalGroupsAuthenticator(AccessEndsAuthenticator):
    """Sign in users declared in ``c.LocalGroupsAuthenticator.users``."""

    users = Dict(
        help="""The people who may sign in, with their groups and admin flag.

        For example::

            c.LocalGroupsAuthenticator.users = {
                "ada": {"admin": True, "groups": ["pangeo-data:admins"]},
                "grace": {"groups": ["pangeo-data:climate"]},
            }
        """,
    ).tag(config=True)

    state_dir = Unicode(
        help="Where generated passwords are kept (default: $PANGEOHUB_STATE_DIR or ./state).",
    ).tag(config=True)

    password_terminal = Unicode(
        "/dev/tty",
        help="""Where newly generated passwords are shown, once: the terminal of the
        person starting the hub. They never go to the hub's log. Empty, or no such
        terminal (e.g. under systemd): only the passwords file's path is logged.""",
    ).tag(config=True)

    manage_groups = Bool(True, help="Groups come from ``users``; always on here.").tag(config=True)

    @default("state_dir")
    def _default_state_dir(self):
        return str(StateDirectory.from_env().path)

    @default("allowed_users")
    def _default_allowed_users(self):
        return set(self.users)

    @default("admin_users")
    def _default_admin_users(self):
        return {name for name, spec in self.users.items() if spec.get("admin")}

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._passwords = self._load_or_create_passwords()

    def _load_or_create_passwords(self) -> dict[str, str]:
        state = StateDirectory(self.state_dir)
        path = state.path / PASSWORDS_FILE
        passwords = json.loads(path.read_text()) if path.exists() else {}
        new = [name for name in self.users if name not in passwords]
        for name in new:
            passwords[name] = secrets.token_urlsafe(12)
        if new:
            state.write_private(PASSWORDS_FILE, json.dumps(passwords, indent=1))
            lines = "".join(f"    {name}: {passwords[name]}\n" for name in new)
            shown = self._show_on_terminal(
                f"Generated sign-in passwords (shown once; kept in {path}):\n{lines}"
            )
            where = "shown on the terminal" if shown else "not shown: no terminal"
            self.log.warning(
                "Generated sign-in passwords for %s (%s); they are kept in %s",
                ", ".join(new),
                where,
                path,
            )
        elif self.users:
            self.log.info("Sign-in passwords for local users are in %s", path)
        return passwords

    def _show_on_terminal(self, text: str) -> bool:
        """Write ``text`` to ``password_terminal``; False if there is none."""
        if not self.password_terminal:
            return False
        try:
            fd = os.open(self.password_terminal, os.O_WRONLY | os.O_APPEND | os.O_NOCTTY)
        except OSError:
            return False
        with os.fdopen(fd, "w") as terminal:
            terminal.write(text)
        return True

    def _model(self, username: str) -> dict:
        spec = self.users[username]
        return {
            "name": username,
            "admin": bool(spec.get("admin", False)),
            "groups": sorted({g.lower() for g in spec.get("groups", [])}),
        }

    async def authenticate(self, handler, data):
        """Check the password of a configured user; None (refused) otherwise."""
        username = self.normalize_username(data.get("username", ""))
        password = data.get("password", "")
        expected = self._passwords.get(username)
        if username not in self.users or expected is None:
            return None
        if not hmac.compare_digest(password.encode(), expected.encode()):
            return None
        return self._model(username)

    async def refresh_user(self, user, handler=None):
        """Keep groups and admin in step with the configuration; drop removed users."""
        if user.name not in self.users:
            self.end_access(user)
            return False
        return self._model(user.name)
