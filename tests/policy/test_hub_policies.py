"""The policies inside a real (in-process) JupyterHub, through its REST API and pages."""

import re

import pytest
from jupyterhub.tests.conftest import *  # noqa: F403 (JupyterHub's fixtures: MockHub, api_request)
from jupyterhub.tests.utils import add_user, api_request, async_requests, get_page, public_url

from tests.hubsetup import member, pangeo_rules
from tests.spawn_page import offered_profiles


@pytest.fixture
def pangeo(app, tmp_path):
    """The MockHub with pangeohub's spawner, profiles and named-server gate."""
    with pangeo_rules(app, tmp_path / "servers", limit=1, group_limit=2) as hub:
        yield hub


async def start(app, user, server="", profile=None, by=None):
    body = {"user_options": {"profile": profile}} if profile else {}
    path = ("servers", server) if server else ("server",)
    return await api_request(
        app, "users", user.name, *path, method="post", json=body, name=by or user.name
    )


async def test_member_starts_group_profile(pangeo):
    user = member(pangeo, "clim1", "pangeo-data:climate")
    response = await start(pangeo, user, profile="large")
    assert response.status_code in (201, 202), response.text
    spawner = user.spawners[""]
    assert spawner.profile.slug == "large" and spawner.cpu_limit == 2
    assert spawner.get_env()["CPU_LIMIT"] == "2.0"
    assert spawner.get_env()["PANGEO_PROFILE"] == "large"
    await user.stop("")


async def test_forged_api_request_for_forbidden_profile_is_403(pangeo):
    user = member(pangeo, "ocean1", "pangeo-data:oceans")
    response = await start(pangeo, user, profile="large")
    assert response.status_code == 403
    assert (
        response.json()["message"] == "You may not use the profile 'large'. Choose one of: 'small'."
    )
    assert not user.spawners[""].active


async def test_a_refused_choice_is_not_reused_by_the_next_start(pangeo):
    user = member(pangeo, "ocean6", "pangeo-data:oceans")
    assert (await start(pangeo, user, profile="large")).status_code == 403
    response = await start(pangeo, user)  # no options: the user's default, not 'large' again
    assert response.status_code in (201, 202), response.text
    assert user.spawners[""].profile.slug == "small"
    await user.stop("")


async def test_unknown_profile_is_400(pangeo):
    user = member(pangeo, "ocean2", "pangeo-data:oceans")
    response = await start(pangeo, user, profile="x" * 500)
    assert response.status_code == 400
    assert "Choose one of: 'small'" in response.json()["message"]
    assert len(response.json()["message"]) < 200  # the bad input is not echoed whole


async def test_spawn_page_shows_only_allowed_profiles(pangeo):
    user = member(pangeo, "ocean3", "pangeo-data:oceans")
    cookies = await pangeo.login_user(user.name)
    page = await get_page("spawn", pangeo, cookies=cookies)
    assert page.status_code == 200
    assert offered_profiles(page.text) == ["small"]


async def test_forged_form_is_403_with_message_and_no_server(pangeo):
    user = member(pangeo, "ocean4", "pangeo-data:oceans")
    cookies = await pangeo.login_user(user.name)
    response = await async_requests.post(
        public_url(pangeo, path="hub/spawn"),
        cookies=cookies,
        data={"profile": "large", "_xsrf": cookies["_xsrf"]},
        headers={"Sec-Fetch-Mode": "navigate"},
    )
    assert response.status_code == 403
    assert "You may not use the profile" in response.text
    assert not user.spawners[""].active


async def test_named_server_limit_is_the_target_users_even_for_an_admin(pangeo):
    admin = add_user(pangeo.db, pangeo, name="hubadmin", admin=True)
    clim = member(pangeo, "clim2", "pangeo-data:climate")  # limit 2
    ocean = member(pangeo, "ocean5", "pangeo-data:oceans")  # limit 1
    for name in ("a", "b"):
        response = await start(pangeo, clim, name, by=admin.name)
        assert response.status_code in (201, 202), response.text
    response = await start(pangeo, clim, "c", by=admin.name)
    assert response.status_code == 403
    assert "clim2 already has 2 named servers (a, b)" in response.json()["message"]
    assert (await start(pangeo, ocean, "a", by=admin.name)).status_code in (201, 202)
    refused = await start(pangeo, ocean, "b", by=admin.name)
    assert refused.status_code == 403
    assert "Delete one" in refused.json()["message"]
    assert {n for n in ocean.orm_spawners if n} == {"a"}  # the refused one left nothing
    for user, names in ((clim, "ab"), (ocean, "a")):
        for name in names:
            await user.stop(name)


@pytest.mark.parametrize("name", ["Bad_Name", "a" * 21, "x--y"])
async def test_bad_server_names_refused_before_anything_exists(pangeo, name):
    user = member(pangeo, f"namer{len(name)}{name[0]}", "pangeo-data:oceans")
    response = await start(pangeo, user, name)
    assert response.status_code == 400
    assert "at most 20 characters" in response.json()["message"]
    assert name not in user.orm_spawners


async def test_home_page_shows_the_users_limit(pangeo):
    user = member(pangeo, "clim3", "pangeo-data:climate")
    cookies = await pangeo.login_user(user.name)
    page = await get_page("home", pangeo, cookies=cookies)
    assert page.status_code == 200
    assert re.search(r"you may have additional\s+2\s+server", page.text)
