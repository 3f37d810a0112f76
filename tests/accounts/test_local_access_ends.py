"""Issue 13, case 1 on one machine: a local user whose account an admin deleted or
deauthorized loses admin and their running servers at the next refresh (in-process hub,
real spawner)."""

from __future__ import annotations

import asyncio

import pytest
from jupyterhub.tests.conftest import *  # noqa: F403 (JupyterHub's fixtures: MockHub, api_request)
from jupyterhub.tests.utils import api_request

from pangeohub.local_auth import LocalGroupsAuthenticator
from tests.hubsetup import member, pangeo_rules


@pytest.fixture(scope="module")
async def hub(app, tmp_path_factory):
    with pangeo_rules(app, tmp_path_factory.mktemp("servers")) as configured:
        yield configured


async def running_server(hub, user):
    response = await api_request(hub, "users", user.name, "server", method="post", name=user.name)
    assert response.status_code in (201, 202), response.text
    future = user.spawners[""]._spawn_future
    if future is not None:
        await future
    assert user.spawners[""].active


def authenticator(hub, tmp_path, **settings):
    return LocalGroupsAuthenticator(
        users={"someone-else": {}},
        state_dir=str(tmp_path),
        password_terminal="",
        _deprecated_db_session=hub.db,
        **settings,
    )


async def until_stopped(spawner, timeout=30):
    async def wait():
        while spawner.active:
            await asyncio.sleep(0.2)

    await asyncio.wait_for(wait(), timeout)


async def test_removed_local_admin_loses_admin_and_servers(hub, tmp_path):
    user = member(hub, "gone-admin", "pangeo-data:oceans")
    user.admin = True
    hub.db.commit()
    await running_server(hub, user)

    assert await authenticator(hub, tmp_path).refresh_user(user) is False
    assert user.orm_user.admin is False
    assert "admin" not in [role.name for role in user.orm_user.roles]
    await until_stopped(user.spawners[""])
    assert "" in user.orm_spawners  # stopped, not removed: the disk stays


async def test_servers_can_be_left_running(hub, tmp_path):
    user = member(hub, "gone-user", "pangeo-data:oceans")
    await running_server(hub, user)
    auth = authenticator(hub, tmp_path, stop_servers_when_access_ends=False)
    assert await auth.refresh_user(user) is False
    assert user.spawners[""].active
    await user.stop("")
