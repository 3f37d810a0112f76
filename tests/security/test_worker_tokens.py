"""Issue 13, case 8, and issue 16: the token a server's Dask workers get is made only when
the gateway asks for it (a cluster starts), expires, and is revoked with the server
(in-process hub: real tokens in JupyterHub's database). The route the gateway asks on is
tested on the real hub in tests/gateway/test_gateway_hub.py."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from jupyterhub import orm
from jupyterhub.tests.utils import add_user
from traitlets import TraitError

from pangeohub.gateway.hub import GatewayService

LIFETIME = 600
NOTE = "Dask workers of server /"


def server_of(app, name):
    user = add_user(app.db, app, name=name)
    started = orm.APIToken.now().replace(tzinfo=None)
    return SimpleNamespace(
        user=user,
        name="",
        log=app.log,
        _log_name=name,
        profile=None,
        active=True,
        orm_spawner=SimpleNamespace(started=started),
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


def worker_tokens(spawner) -> list[orm.APIToken]:
    return [t for t in spawner.user.api_tokens if t.note == NOTE]


async def test_a_start_makes_no_token_and_one_made_on_request_expires(app):
    spawner = server_of(app, "workertok")
    service = gateway()
    assert "JUPYTERHUB_API_TOKEN" not in await service.worker_environment(spawner)
    assert not worker_tokens(spawner)  # nothing in the database until a cluster asks

    first, lifetime = service.mint_worker_token(spawner)
    assert lifetime == LIFETIME
    token = stored(app, first)
    left = (token.expires_at - token.now()).total_seconds()
    assert LIFETIME - 60 < left <= LIFETIME  # it expires (it used to never)
    assert token.scopes == ["read:users:name!user"]

    # a later cluster of the same run gets a new one; the first lives on for its workers
    second, _ = service.mint_worker_token(spawner)
    assert stored(app, first) is not None and stored(app, second) is not None

    await service.stop_server_clusters(spawner)  # the server stops: all are revoked
    assert stored(app, first) is None and stored(app, second) is None
    assert not worker_tokens(spawner)


async def test_tokens_of_an_earlier_run_of_the_server_go_when_a_new_one_is_made(app):
    spawner = server_of(app, "workerleft")
    service = gateway()
    left_over, _ = service.mint_worker_token(spawner)  # a stop the hub missed kept it
    stored(app, left_over).created = spawner.orm_spawner.started - datetime.timedelta(hours=1)
    app.db.commit()

    fresh, _ = service.mint_worker_token(spawner)
    assert stored(app, left_over) is None
    assert stored(app, fresh) is not None
    assert len(worker_tokens(spawner)) == 1


def test_worker_token_lifetime_is_bounded():
    with pytest.raises(TraitError):
        GatewayService(worker_token_lifetime=0)
