"""Local accounts for the one-machine hub, on upstream's NativeAuthenticator.

NativeAuthenticator (jupyterhub-nativeauthenticator) gives the pages: sign-up
(``/hub/signup``) that an admin approves (``/hub/authorize``), a person's own password
change (``/hub/change-password``) and an admin's (``/hub/change-password/<name>``).
Passwords are kept only as bcrypt hashes, in the hub's database (its ``users_info``
table), so a backup of the database carries them.

What pangeohub adds:

- Accounts named in ``users`` (``make run``'s sample community) are made at the first
  start with a random password shown once on the starting person's terminal; only its
  hash is kept. Their groups are set then, once; after that groups belong to
  JupyterHub's admin page and REST API (``manage_groups`` is off), so a change there
  holds across restarts and takes effect at each server's next start.
- Every hub user without an account gets one with an unguessable password (an admin
  who adds someone on the admin page then sets it at ``/hub/change-password/<name>``),
  so nobody can claim an existing name by signing up first.
- Sign-ups wait for an admin's approval, also for names listed in ``admin_users``
  (upstream approves those at once: the first to sign up under an admin's name would
  become admin).
- The approval and discard links (state-changing GETs upstream) refuse requests made
  from another site; refusals are 4xx (upstream answers 200 with an alert).
- An account an admin deauthorizes or deletes loses every kind of access at its next
  refresh (:class:`~pangeohub.access.AccessEndsAuthenticator`).

Earlier pangeohub releases kept generated passwords in plain text in
``<state dir>/local-passwords.json``: at start each is hashed into the database and the
file is deleted (the passwords people know keep working).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import bcrypt
from jupyterhub import orm
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native
from nativeauthenticator.orm import UserInfo
from tornado import web
from traitlets import Dict, Integer, Unicode, default
from traitlets.config import Config

from .access import AccessEndsAuthenticator
from .state import StateDirectory

LEGACY_PASSWORDS_FILE = "local-passwords.json"
TEMPLATES = str(Path(__file__).with_name("local_auth_templates"))


def hash_password(password: str, rounds: int = 12) -> bytes:
    """The bcrypt hash NativeAuthenticator stores (salt and cost included)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds))


class _RefusalIs4xx:
    """A page rendered with an error alert answers 400, not 200."""

    def render_template(self, name, sync=False, **ns):
        if ns.get("alert") == "alert-danger":
            self.set_status(400)
        return super().render_template(name, sync=sync, **ns)


class _SameSiteOnly:
    """Refuse a state-changing GET that another site started (Sec-Fetch-Site)."""

    def prepare(self):
        site = self.request.headers.get("Sec-Fetch-Site", "same-origin")
        if site not in ("same-origin", "none"):
            raise web.HTTPError(403, "Open this link from the hub's own authorization page.")
        return super().prepare()


class SignUpHandler(_RefusalIs4xx, native.SignUpHandler):
    def get_result_message(self, user, human, taken, matches, user_is_admin):
        # An admin's name signs up like any other: it waits for approval.
        return super().get_result_message(user, human, taken, matches, False)


class ChangePasswordHandler(_RefusalIs4xx, native.ChangePasswordHandler):
    pass


class ChangePasswordAdminHandler(_RefusalIs4xx, native.ChangePasswordAdminHandler):
    pass


class ToggleAuthorizationHandler(_SameSiteOnly, native.ToggleAuthorizationHandler):
    pass


class DiscardHandler(_SameSiteOnly, native.DiscardHandler):
    pass


HANDLERS = {
    "/signup": SignUpHandler,
    "/discard/([^/]*)": DiscardHandler,
    "/authorize/([^/]*)": ToggleAuthorizationHandler,
    "/change-password": ChangePasswordHandler,
    "/change-password/([^/]+)": ChangePasswordAdminHandler,
}


class LocalGroupsAuthenticator(AccessEndsAuthenticator, NativeAuthenticator):
    """Local accounts: sign-up with approval, hashed passwords, groups from the hub."""

    users = Dict(
        help="""Accounts made at the hub's first start, with their admin flag and first
        groups. Each gets a random password, shown once on the terminal of the person
        starting the hub (``password_terminal``); only its hash is kept. Groups are set
        when the account is made; afterwards they are managed on JupyterHub's admin page
        or REST API. For example::

            c.LocalGroupsAuthenticator.users = {
                "ada": {"admin": True, "groups": ["pangeo-data:admins"]},
                "grace": {"groups": ["pangeo-data:climate"]},
            }
        """,
    ).tag(config=True)

    state_dir = Unicode(
        help="""The hub's state directory (default: $PANGEOHUB_STATE_DIR or ./state), where
        earlier releases kept generated passwords in plain text; they are hashed into the
        database at start and that file is deleted.""",
    ).tag(config=True)

    password_terminal = Unicode(
        "/dev/tty",
        help="""Where the passwords of accounts made from ``users`` are shown, once: the
        terminal of the person starting the hub. They never go to the hub's log. Empty, or
        no such terminal (e.g. under systemd): nobody learns them; set one with
        `pangeohub-admin set-password NAME`.""",
    ).tag(config=True)

    bcrypt_rounds = Integer(
        12,
        help="""bcrypt's cost (log2 of its rounds) for the passwords of accounts pangeohub
        makes (from ``users``, from the admin page, by `pangeohub-admin set-password`).
        Sign-ups and password changes use NativeAuthenticator's own (12). A sign-in
        checks a password at the cost it was hashed with.""",
    ).tag(config=True)

    @default("state_dir")
    def _default_state_dir(self):
        return str(StateDirectory.from_env().path)

    @default("allowed_users")
    def _default_allowed_users(self):
        return set(self.users)

    @default("admin_users")
    def _default_admin_users(self):
        return {name for name, spec in self.users.items() if spec.get("admin")}

    @default("minimum_password_length")
    def _default_minimum_password_length(self):
        return 8

    @default("check_common_password")
    def _default_check_common_password(self):
        return True

    @default("allowed_failed_logins")
    def _default_allowed_failed_logins(self):
        return 10

    def get_handlers(self, app):
        """Upstream's pages with pangeohub's refusals; sign-in stays JupyterHub's own
        (upstream's sign-in handler uses JupyterHub's statsd, gone in JupyterHub 6)."""
        return [
            (path, HANDLERS.get(path, handler))
            for path, handler in super().get_handlers(app)
            if path != "/login"
        ]

    def get_authed_users(self):
        """Only approved accounts are pre-approved (upstream adds allowed and admin names)."""
        return {info.username for info in UserInfo.all_users(self.db) if info.is_authorized}

    def check_allowed(self, username, authentication=None):
        """An approved account may sign in; so may anyone the admin allowed by name."""
        info = self.get_user(username)
        if info is not None and info.is_authorized:
            return True
        return super().check_allowed(username, authentication)

    def add_user(self, user):
        """Give every hub user an account (JupyterHub calls this for each user at start
        and for each user an admin adds)."""
        super().add_user(user)
        if self.get_user(user.name) is None:
            self._make_account(getattr(user, "orm_user", user))

    def _make_account(self, user: orm.User) -> None:
        legacy = self._legacy_passwords()
        spec = self.users.get(user.name)
        password = legacy.get(user.name) or secrets.token_urlsafe(12)
        self.db.add(
            UserInfo(
                username=user.name,
                password=hash_password(password, self.bcrypt_rounds),
                is_authorized=True,
            )
        )
        if spec is not None:
            for name in sorted({g.lower() for g in spec.get("groups", [])}):
                group = orm.Group.find(self.db, name)
                if group is None:
                    group = orm.Group(name=name)
                    self.db.add(group)
                if group not in user.groups:
                    user.groups.append(group)
        self.db.commit()
        if user.name in legacy:
            self._forget_legacy_passwords(legacy)
        elif spec is not None:
            shown = self._show_on_terminal(
                f"Sign-in password for {user.name} (shown once, kept only as a hash): {password}\n"
            )
            self.log.warning(
                "Made the local account %s (%s)",
                user.name,
                "its password is shown on the terminal"
                if shown
                else "no terminal to show its password: set one with "
                f"`pangeohub-admin set-password {user.name}`",
            )

    def _legacy_passwords(self) -> dict[str, str]:
        path = StateDirectory(self.state_dir).path / LEGACY_PASSWORDS_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def _forget_legacy_passwords(self, legacy: dict[str, str]) -> None:
        """Delete the plain-text file once every password in it is hashed."""
        if all(self.get_user(name) is not None for name in legacy):
            (StateDirectory(self.state_dir).path / LEGACY_PASSWORDS_FILE).unlink()
            self.log.warning(
                "Hashed the local passwords of an earlier release into the database and deleted %s",
                LEGACY_PASSWORDS_FILE,
            )

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

    async def refresh_user(self, user, handler=None):
        """An account deauthorized or deleted by an admin ends every kind of access."""
        info = self.get_user(user.name)
        if info is None or not info.is_authorized:
            self.end_access(user)
            return False
        return True


def wire_local_accounts(c: Config) -> None:
    """With local accounts, the sign-in page links to sign-up (when it is open); what
    pangeohub cannot honour of NativeAuthenticator's settings stops the hub."""
    names = ("pangeo-local", f"{__name__}.LocalGroupsAuthenticator", LocalGroupsAuthenticator)
    if c.JupyterHub.get("authenticator_class") not in names:
        return
    if c.LocalGroupsAuthenticator.get("allow_2fa", c.NativeAuthenticator.get("allow_2fa")):
        raise ValueError(
            "NativeAuthenticator.allow_2fa is not supported with pangeohub's local accounts "
            "(the sign-in page is JupyterHub's, which does not ask for the code): unset it."
        )
    paths = list(c.JupyterHub.get("template_paths", []))
    if TEMPLATES not in paths:
        c.JupyterHub.template_paths = [*paths, TEMPLATES]
    signup = c.LocalGroupsAuthenticator.get(
        "enable_signup", c.NativeAuthenticator.get("enable_signup", True)
    )
    c.JupyterHub.template_vars = {
        "pangeohub_signup": signup,
        **c.JupyterHub.get("template_vars", {}),
    }
