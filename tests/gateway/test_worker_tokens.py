"""Issue 13, case 8, and issue 16: the token a server's Dask workers get is made only when
the gateway asks for it (a cluster starts), expires, and is revoked with the server
(in-process hub: real tokens in JupyterHub's database). The route the gateway asks on is
tested on the real hub in tests/gateway/test_gateway_hub.py."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from jupyterhub import orm
from jupyterhub.tests.conftest import *  # noqa: F403 (JupyterHub's fixtures: MockHub, api_request)
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


async def test_the_route_refuses_clearly_and_makes_no_token_it_cannot_grant(app):
    """The hub's route (in-process): 403 for a token without the gateway's scope, 404 for
    a server that is not running, 503 (not a 500) when the hub's worker_token_scopes
    cannot be granted, and with the scopes right a token for the running server."""
    import json
    import re

    from jupyterhub import roles, scopes
    from jupyterhub.tests.utils import api_request
    from tornado.routing import PathMatches, Rule

    from pangeohub.gateway.worker_tokens import (
        WORKER_TOKEN_ROUTE,
        WORKER_TOKEN_SCOPE,
        WorkerTokenHandler,
    )

    scopes.define_custom_scopes({WORKER_TOKEN_SCOPE: {"description": "tests"}})
    service = orm.Service(name="gateway-route-test")
    app.db.add(service)
    app.db.commit()
    roles.create_role(app.db, {"name": "gateway-route-test", "scopes": [WORKER_TOKEN_SCOPE]})
    roles.grant_role(app.db, service, "gateway-route-test")
    service_token = service.new_api_token()
    service_gateway = gateway()
    router = app.tornado_application.wildcard_router
    path = re.escape(app.hub.base_url.rstrip("/") + WORKER_TOKEN_ROUTE) + "$"
    rule = Rule(PathMatches(path), WorkerTokenHandler, {"gateway": service_gateway})
    router.rules.insert(0, router.process_rule(rule))

    user = add_user(app.db, app, name="routeuser")
    started = await api_request(app, "users/routeuser/server", method="post")
    assert started.status_code == 201, started.text  # MockSpawner: running when it answers

    async def ask(token, body):
        return await api_request(
            app,
            "pangeohub/dask-worker-token",
            method="post",
            headers={"Authorization": f"token {token}"},
            data=json.dumps(body),
        )

    body = {"user": "routeuser", "server": "/"}
    assert (await ask(user.new_api_token(), body)).status_code == 403
    assert (await ask(service_token, {"user": "routeuser", "server": "/x"})).status_code == 404
    service_gateway.worker_token_scopes = ["admin:users"]  # more than the user holds
    refused = await ask(service_token, body)
    assert refused.status_code == 503, refused.text
    assert "worker_token_scopes" in refused.json()["message"]
    assert not [t for t in user.api_tokens if t.note == NOTE]

    service_gateway.worker_token_scopes = ["read:users:name!user"]
    made = await ask(service_token, body)
    assert made.status_code == 201, made.text
    assert stored(app, made.json()["token"]).note == NOTE
