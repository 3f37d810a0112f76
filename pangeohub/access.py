"""When someone may no longer use the hub, their access ends at the next refresh.

Both pangeohub authenticators build on :class:`AccessEndsAuthenticator`. Their
``refresh_user`` returns False for a person who is no longer admitted (removed from
every admitted team, or from the local user list); then:

- every kind of request ends, not only the browser's: ``auth_refresh_strict`` (a
  JupyterHub setting, False by default since 6.1) is True here, so a request made with
  a personal token or a server's own token is refused too, instead of keeping the
  stale user;
- admin rights go at once (the admin role is stripped in the hub's database);
- the person's running servers are stopped (never removed: their disks stay), unless
  ``stop_servers_when_access_ends`` is False.

A refresh that cannot decide (GitHub unreachable) returns True and ends nothing.
"""

from __future__ import annotations

import asyncio

from jupyterhub import roles
from jupyterhub.auth import Authenticator
from traitlets import Bool, default


class AccessEndsAuthenticator(Authenticator):
    """An Authenticator whose refusal at refresh ends every kind of access."""

    stop_servers_when_access_ends = Bool(
        True,
        help="""Stop a person's running servers when a refresh finds they may no longer
        use the hub (their disks are kept). False: the servers keep running until they
        are culled or stopped by an admin; the person still cannot reach them.""",
    ).tag(config=True)

    @default("auth_refresh_strict")
    def _auth_refresh_strict_default(self):
        # JupyterHub 6.1 keeps a stale user on token requests unless this is True.
        return True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._stopping: set[asyncio.Task] = set()  # stops under way, kept until done

    def end_access(self, user) -> None:
        """Strip admin and stop the running servers of ``user`` (a hub User)."""
        orm_user = getattr(user, "orm_user", None)
        if orm_user is None:
            return  # not a hub user (e.g. a unit test's stand-in)
        if orm_user.admin:
            orm_user.admin = False
            roles.assign_default_roles(user.db, entity=orm_user)
            user.db.commit()
            self.log.info("%s is no longer an admin", user.name)
        if not self.stop_servers_when_access_ends:
            return
        running = [name for name, spawner in user.spawners.items() if spawner.active]
        if not running:
            return
        self.log.info(
            "Stopping %d server(s) of %s, who may no longer use the hub", len(running), user.name
        )
        for name in running:
            task = asyncio.ensure_future(self._stop(user, name))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def _stop(self, user, name: str) -> None:
        spawner = user.spawners.get(name)
        if spawner is None or spawner.pending or not spawner.active:
            return
        try:
            await user.stop(name)
        except Exception as error:  # the next refresh or the culler tries again
            self.log.warning("Could not stop %s's server %r (%s)", user.name, name, error)
