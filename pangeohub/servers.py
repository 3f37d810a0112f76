"""The hub's named-server gate: the limit and the name rule, before a server exists.

JupyterHub consults ``named_server_limit_per_user`` for every request that would
create a named server, before the server is created. pangeohub answers it for the
*target* user (JupyterHub asks about the requester, so an admin acting for someone
would get the admin's limit) and applies its own name rule and message there, so a
refused request leaves nothing behind.
"""

from __future__ import annotations

from tornado import web

from .policy import PangeoPolicy, PolicyError
from .spawner.mixin import refusal


class NamedServerGate:
    """Use as ``c.JupyterHub.named_server_limit_per_user = NamedServerGate()``."""

    def __init__(self, policy: PangeoPolicy | None = None):
        self._policy = policy

    def policy(self, handler) -> PangeoPolicy:
        """The policy, configured from the hub's ``c.PangeoPolicy`` on first use."""
        if self._policy is None:
            self._policy = PangeoPolicy(config=handler.settings.get("config"))
        return self._policy

    def __call__(self, handler) -> int:
        """The target user's limit; a refusal if this request would break a rule."""
        policy = self.policy(handler)
        user = self._target_user(handler)
        if user is None:
            return policy.named_server_limit
        groups = [group.name for group in user.groups]
        server_name = self._requested_server(handler)
        if server_name and server_name not in user.orm_spawners:
            named = [name for name in user.orm_spawners if name]
            try:
                policy.check_server_name(server_name)
                policy.check_new_named_server(user.name, named, groups)
            except PolicyError as error:
                raise refusal(error) from None
        return policy.named_server_limit_for(groups)

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
