"""The person's own short-lived token for one BinderHub build, revoked when it ends.

BinderHub sees who builds from the token it is called with, so the hub mints one for the
person with JupyterHub's public ``User.new_api_token``, allowed only to reach BinderHub's
service. JupyterHub has no public call to revoke a token in its own process (the REST
API's ``DELETE /users/<name>/tokens/<id>`` needs the ``tokens`` scope, which the launcher's
service must not hold: it would let it mint anyone's tokens), so the token is deleted
through the hub's database, as that API does; it also expires within the hour.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from jupyterhub import orm

from .spec import LaunchError

NOTE = "binder build"  # what the person sees in their token list while a build runs
LIFETIME = 3600  # seconds: an upper bound should the hub stop before revoking it


def service_scope(service: str) -> str:
    return f"access:services!service={service}"


@contextmanager
def build_token(user, service: str) -> Iterator[str]:
    """A token of ``user``'s that may only reach the hub service ``service``, for the
    duration of the ``with`` block; a 403 when the person may not access that service."""
    scope = service_scope(service)
    try:
        token = user.new_api_token(note=NOTE, expires_in=LIFETIME, scopes=[scope])
    except ValueError:
        raise LaunchError(
            403,
            f"You may not use this hub's BinderHub: a hub admin must give people the "
            f"scope {scope} (binderhub-service's set-up does).",
        ) from None
    try:
        yield token
    finally:
        revoke(user.db, token)


def revoke(db, token: str) -> None:
    """Delete ``token`` (gone already: nothing to do)."""
    orm_token = orm.APIToken.find(db, token)
    if orm_token is not None:
        db.delete(orm_token)
        db.commit()
