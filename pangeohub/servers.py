"""The hub's named-server gate: every rule, before a server exists.

JupyterHub consults ``named_server_limit_per_user`` for every request that would
create a named server (API POST/PUT, the spawn page's GET and POST, renaming the
default server), before the server is created. pangeohub answers it for the *target*
user (JupyterHub asks about the requester, so an admin acting for someone would get
the admin's limit) and applies its own rules there, so a refused request leaves
nothing behind:

- the name rule and the limit;
- the display name (JupyterHub 6 lets a server carry one): no longer than a name;
- the profile asked for, if any: a new server is not created for a refused profile.

Display names set where JupyterHub does not consult the gate (``PATCH`` of an existing
server) are held to the same rule by :func:`install_display_name_rule`; renames go
through the spawner's ``rename`` (:class:`~pangeohub.spawner.mixin.PangeoSpawnerMixin`).

:func:`wire_named_servers` (part of :func:`pangeohub.configure`) sets the gate and makes
both changes to JupyterHub; importing this module or making a gate changes nothing.
"""

from __future__ import annotations

import json

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.apihandlers.users import UserServerAPIHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.slugs import is_valid_safe_slug
from sqlalchemy import event
from tornado import web
from traitlets.config import Config

from .parts import hub_part
from .policy import PangeoPolicy, PolicyError
from .refusal import refusal

_MISSING = object()


def hub_policy() -> PangeoPolicy:
    """The running hub's policy, configured from its ``c.PangeoPolicy``."""
    from jupyterhub.app import JupyterHub

    config = JupyterHub.instance().config if JupyterHub.initialized() else None
    return PangeoPolicy(config=config)


def _check_display_name(target, value, oldvalue, initiator):
    """SQLAlchemy ``set`` listener on ``Spawner.display_name``: refuse a long one.

    Skipped while JupyterHub renames a server created before JupyterHub 6 (its name
    is not yet a valid slug and its old name becomes the display name)."""
    legacy = target.name is not None and target.name != "" and not is_valid_safe_slug(target.name)
    if value and value != oldvalue and not legacy:
        try:
            hub_policy().check_display_name(value)
        except PolicyError as error:
            raise refusal(error) from None
    return value


def install_display_name_rule() -> None:
    """Hold every display name JupyterHub stores to the name length (once per process)."""
    if not event.contains(orm.Spawner.display_name, "set", _check_display_name):
        event.listen(orm.Spawner.display_name, "set", _check_display_name, retval=True)


PATCH_FIELDS = {"name": str, "display_name": str, "user_options": dict}


class ServerAPIHandler(UserServerAPIHandler):
    """JupyterHub's server API, with the profile of a start and PATCH bodies checked
    before JupyterHub acts on them.

    A start (``POST``) asking for a profile the target user may not use, or restarting a
    server whose profile they may no longer use, is refused (4xx) before anything is
    spawned, for the default server as for named ones: with Zero to JupyterHub's
    ``slow_spawn_timeout: 0`` a refusal from the spawner would be a 202 and a failed spawn.

    Workaround for JupyterHub 6.1 (``apihandlers/users.py``, ``UserServerAPIHandler.patch``):
    a body that is not an object, an unknown field (its message calls ``set.join``) or a
    ``name`` that is not text ends in a 500. No upstream issue was found to name; drop
    this class once JupyterHub answers those with a 400.
    """

    @needs_scope("start:servers")
    async def post(self, user_name, server_name=""):
        self._check_profile(user_name, server_name)
        return await super().post(user_name, server_name)

    def _check_profile(self, user_name: str, server_name: str) -> None:
        user = self.find_user(user_name)
        if user is None:
            return  # JupyterHub answers 404
        options = (self.get_server_json_body() or {}).get("user_options")
        if options is None:  # a restart: the server keeps the options it had
            orm_spawner = user.orm_spawners.get(server_name)
            options = (orm_spawner.user_options if orm_spawner is not None else None) or {}
        profile = options.get("profile") if isinstance(options, dict) else None
        if not profile:
            return
        try:
            hub_part(PangeoPolicy, self).choose_profile(profile, [g.name for g in user.groups])
        except PolicyError as error:
            raise refusal(error) from None

    async def patch(self, user_name, server_name=""):
        body = self.get_json_body()
        if body is not None and not isinstance(body, dict):
            raise web.HTTPError(400, 'The body must be a JSON object, e.g. {"name": "new-name"}.')
        for key, value in (body or {}).items():
            if key not in PATCH_FIELDS:
                fields = ", ".join(sorted(PATCH_FIELDS))
                raise web.HTTPError(
                    400, f"A server has no field {key[:40]!r} to change; use {fields}."
                )
            if not isinstance(value, PATCH_FIELDS[key]):
                kind = "an object" if PATCH_FIELDS[key] is dict else "text"
                raise web.HTTPError(400, f"The server's {key} must be {kind}.")
        return await super().patch(user_name, server_name)


def install_server_api_checks() -> None:
    """Serve the server API with :class:`ServerAPIHandler` (before the hub builds its routes)."""
    from jupyterhub import apihandlers

    for handlers in (apihandlers.default_handlers, apihandlers.users.default_handlers):
        for i, (pattern, handler, *rest) in enumerate(handlers):
            if handler is UserServerAPIHandler:
                handlers[i] = (pattern, ServerAPIHandler, *rest)


def install_jupyterhub_patches() -> None:
    """pangeohub's two changes to JupyterHub itself (once per process): the display-name
    rule on its database, and :class:`ServerAPIHandler` for its server API."""
    install_display_name_rule()
    install_server_api_checks()


def wire_named_servers(c: Config) -> None:
    """Set the gate as ``c.JupyterHub.named_server_limit_per_user`` (keeping one the admin
    set) and patch JupyterHub (part of :func:`pangeohub.configure`). Any other value of
    that setting would replace pangeohub's limit and name rule: it is refused."""
    limit = c.JupyterHub.get("named_server_limit_per_user")
    if limit is None:
        c.JupyterHub.named_server_limit_per_user = NamedServerGate()
    elif not isinstance(limit, NamedServerGate):
        raise ValueError(
            f"c.JupyterHub.named_server_limit_per_user is {limit!r}, but pangeohub applies "
            "its own limit and name rule there: unset it and set "
            "c.PangeoPolicy.named_server_limit (and named_server_limit_by_group) instead."
        )
    install_jupyterhub_patches()


class NamedServerGate:
    """JupyterHub's ``named_server_limit_per_user``, answered by :class:`PangeoPolicy`.

    :func:`pangeohub.configure` sets it; setting it by hand as
    ``c.JupyterHub.named_server_limit_per_user = NamedServerGate()`` is kept as it is."""

    def __init__(self, policy: PangeoPolicy | None = None):
        self._policy = policy

    def policy(self, handler) -> PangeoPolicy:
        """The policy, configured from the hub's ``c.PangeoPolicy`` on first use (which
        says so in the log if the hub's configuration did not end with ``configure(c)``)."""
        if self._policy is None:
            self._policy = PangeoPolicy(config=handler.settings.get("config"))
            if not event.contains(orm.Spawner.display_name, "set", _check_display_name):
                handler.log.error(
                    "pangeohub.configure(c) did not run: display names and the server API "
                    "are not checked; end jupyterhub_config.py with pangeohub.configure(c)."
                )
        return self._policy

    def __call__(self, handler) -> int:
        """The target user's limit; a refusal if this request would break a rule."""
        policy = self.policy(handler)
        user = self._target_user(handler)
        if user is None:
            return policy.named_server_limit
        groups = [group.name for group in user.groups]
        server_name = self._requested_server(handler)
        try:
            display_name, profile, new_name = self._requested_fields(handler)
            if display_name:
                policy.check_display_name(display_name)
            if new_name is not _MISSING:  # a rename
                self._check_rename(policy, user, server_name, new_name, groups)
            elif server_name and server_name not in user.orm_spawners:
                policy.check_server_name(server_name)
                policy.check_new_named_server(user.name, self._named(user), groups)
                if profile is not _MISSING and profile:
                    policy.choose_profile(profile, groups)
        except PolicyError as error:
            raise refusal(error) from None
        return policy.named_server_limit_for(groups)

    def _check_rename(self, policy, user, server_name, new_name, groups) -> None:
        if not isinstance(new_name, str):
            raise PolicyError(400, "The new server name must be text.")
        policy.check_server_name(new_name)
        if not server_name:  # renaming the default server adds a named one
            policy.check_new_named_server(user.name, self._named(user), groups)

    @staticmethod
    def _named(user) -> list[str]:
        return [name for name in user.orm_spawners if name]

    @staticmethod
    def _target_user(handler):
        args = handler.path_args or []
        if args and args[0]:
            user = handler.find_user(args[0])
            if user is None:
                raise web.HTTPError(404, "No such user: %s", args[0][:64])
            return user
        return handler.current_user

    @staticmethod
    def _requested_server(handler) -> str:
        args = handler.path_args or []
        return args[1] if len(args) > 1 and args[1] else ""

    @staticmethod
    def _requested_fields(handler) -> tuple[object, object, object]:
        """(display name, profile, new name) this request asks for; _MISSING if absent."""
        request = handler.request
        if not isinstance(handler, APIHandler):  # the spawn page: query or form fields
            fields = request.query_arguments if request.method == "GET" else request.body_arguments
            profile = fields.get("profile", [_MISSING])[0]
            display = request.query_arguments.get("display_name", [b""])[0]
            if isinstance(profile, bytes):
                profile = profile.decode("utf8", "replace")
            return display.decode("utf8", "replace"), profile, _MISSING
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return "", _MISSING, _MISSING  # JupyterHub refuses it with its own 400
        if not isinstance(body, dict):
            return "", _MISSING, _MISSING
        if request.method == "PATCH":
            return body.get("display_name") or "", _MISSING, body.get("name", _MISSING)
        if "user_options" in body:
            options = body["user_options"]
        else:  # JupyterHub's older form: the body is the options
            options = None if "display_name" in body else body
        profile = options.get("profile", _MISSING) if isinstance(options, dict) else _MISSING
        return body.get("display_name") or "", profile, _MISSING
