"""Issue 13, case 8: the token a server's Dask workers get expires, and is renewed while
the server runs (in-process hub: real tokens in JupyterHub's database)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from jupyterhub import orm
from jupyterhub.tests.utils import add_user
from traitlets import TraitError

from pangeohub.gateway.hub import GatewayService

LIFETIME = 600


def server_of(app, name):
    user = add_user(app.db, app, name=name)
    return SimpleNamespace(
        user=user, name="", log=app.log, _log_name=name, profile=None, active=True
    )


def gateway():
    return GatewayService(
        api_token="not-used",
        address="http://127.0.0.1:9",  # no gateway here: its routes are not what is tested
        request_timeout=0.5,
        worker_environment_hooks=[],
        worker_token_scopes=["read:users:name!user"],
        worker_token_lifetime=LIFETIME,
    )


def stored(app, token: str) -> orm.APIToken | None:
    app.db.expire_all()
    return orm.APIToken.find(app.db, token)


async def test_worker_token_expires_and_is_renewed_then_revoked(app):
    spawner = server_of(app, "workertok")
    service = gateway()
    first = (await service.worker_environment(spawner))["JUPYTERHUB_API_TOKEN"]
    token = stored(app, first)
    lifetime = (token.expires_at - token.now()).total_seconds()
    assert LIFETIME - 60 < lifetime <= LIFETIME  # it expires (it used to never)

    assert await service.renew_worker_token(spawner) is False  # not due yet
    # half its lifetime gone: a new token, and the old one still works until it expires
    token.expires_at = token.now() + datetime.timedelta(seconds=LIFETIME / 2 - 1)
    app.db.commit()
    assert await service.renew_worker_token(spawner) is True
    tokens = [t for t in spawner.user.api_tokens if t.note.startswith("Dask workers")]
    assert len(tokens) == 2 and stored(app, first) is not None

    await service.stop_server_clusters(spawner)  # the server stops: all are revoked
    assert stored(app, first) is None
    assert not [t for t in spawner.user.api_tokens if t.note.startswith("Dask workers")]


def test_worker_token_lifetime_is_bounded():
    with pytest.raises(TraitError):
        GatewayService(worker_token_lifetime=0)


async def test_renewal_runs_while_the_server_runs_and_stops_with_it(app):
    spawner = server_of(app, "workerrenew")
    await gateway().environment(spawner)  # the start hook (one object per hook call)
    renewal = spawner._pangeo_token_renewal
    assert renewal.is_running()
    await gateway().stop_server_clusters(spawner)  # the stop hook, another object
    assert not renewal.is_running() and spawner._pangeo_token_renewal is None
