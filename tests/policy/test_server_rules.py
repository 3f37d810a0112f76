"""Issue 13, cases 4, 5 and 9: renames, refused profiles and display names keep every
rule, attacked through the hub's REST API and pages as a user would (in-process hub)."""

from __future__ import annotations

import pytest
from jupyterhub.tests.conftest import *  # noqa: F403 (JupyterHub's fixtures: MockHub, api_request)
from jupyterhub.tests.utils import api_request, async_requests, public_url

from tests.hubsetup import member, pangeo_rules

LONG_DISPLAY = "Climate run with a very long descriptive title that goes on 60"
NAME_RULE = "at most 20 characters"
DISPLAY_RULE = "too long for a server's display name. Use at most 20 characters"


@pytest.fixture(scope="module")
async def hub(app, tmp_path_factory):
    with pangeo_rules(app, tmp_path_factory.mktemp("servers")) as configured:
        yield configured


async def api(hub, user, method, *path, body=None, by=None):
    return await api_request(
        hub, "users", user.name, *path, method=method, json=body, name=by or user.name
    )


async def start_and_stop(hub, user, server):
    path = ("servers", server) if server else ("server",)
    response = await api(hub, user, "post", *path, body={})
    assert response.status_code in (201, 202), response.text
    await spawned(user, server)
    await user.stop(server)


async def spawned(user, server):
    """Wait for a start the hub has under way (bounded by the spawner's start_timeout)."""
    future = user.spawners[server]._spawn_future
    if future is not None:
        await future


def page_post(hub, cookies, path, data):
    return async_requests.post(
        public_url(hub, path=path),
        cookies=cookies,
        data={**data, "_xsrf": cookies["_xsrf"]},
        headers={"Sec-Fetch-Mode": "navigate"},
        allow_redirects=False,
    )


# --- case 5: a refused profile on a new named server leaves nothing ----------


@pytest.mark.parametrize(
    "body",
    [{"user_options": {"profile": "large"}}, {"profile": "large"}],
    ids=["user_options", "old-style-body"],
)
async def test_refused_profile_on_new_server_leaves_no_server(hub, body):
    user = member(hub, f"ocean-api-{len(body)}", "pangeo-data:oceans")  # limit 1
    response = await api(hub, user, "post", "servers", "new", body=body)
    assert response.status_code == 403
    assert response.json()["message"] == (
        "You may not use the profile 'large'. Choose one of: 'small'."
    )
    assert "new" not in user.orm_spawners
    # the slot is still free: the next legitimate server is created
    ok = await api(hub, user, "put", "servers", "next", body={})
    assert ok.status_code == 201, ok.text


async def test_refused_profile_in_put_leaves_no_server(hub):
    user = member(hub, "ocean-put", "pangeo-data:oceans")
    body = {"user_options": {"profile": "large"}}
    response = await api(hub, user, "put", "servers", "new", body=body)
    assert response.status_code == 403 and "You may not use" in response.json()["message"]
    assert "new" not in user.orm_spawners


async def test_refused_profile_through_the_spawn_form_leaves_no_server(hub):
    user = member(hub, "ocean-form", "pangeo-data:oceans")
    cookies = await hub.login_user(user.name)
    response = await page_post(hub, cookies, f"hub/spawn/{user.name}/new", {"profile": "large"})
    assert response.status_code == 403
    assert "You may not use the profile" in response.text and "Traceback" not in response.text
    assert "new" not in user.orm_spawners
    query = await async_requests.get(
        public_url(hub, path=f"hub/spawn/{user.name}/new2?profile=large"),
        cookies=cookies,
        allow_redirects=False,
    )
    assert query.status_code == 403 and "new2" not in user.orm_spawners
    ok = await page_post(hub, cookies, f"hub/spawn/{user.name}/good", {"profile": "small"})
    assert ok.status_code in (200, 302), ok.text[:300]
    assert "good" in user.orm_spawners
    await spawned(user, "good")
    await user.stop("good")


# --- case 9: display names are held to the name length, wherever set --------


async def test_display_name_too_long_refused_on_create(hub):
    user = member(hub, "disp-create", "pangeo-data:oceans")
    for method in ("put", "post"):
        response = await api(
            hub, user, method, "servers", "run", body={"display_name": LONG_DISPLAY}
        )
        assert response.status_code == 400, (method, response.text)
        assert DISPLAY_RULE in response.json()["message"]
        assert "run" not in user.orm_spawners
    # the home page's "Add New Server" sends the typed text as display_name
    cookies = await hub.login_user(user.name)
    page = await async_requests.get(
        public_url(hub, path=f"hub/spawn/{user.name}/run"),
        params={"display_name": LONG_DISPLAY},
        cookies=cookies,
        allow_redirects=False,
    )
    assert page.status_code == 400 and "too long for a server&#39;s display name" in page.text
    assert "run" not in user.orm_spawners
    ok = await api(hub, user, "put", "servers", "run", body={"display_name": "Climate run 2"})
    assert ok.status_code == 201 and ok.json()["display_name"] == "Climate run 2"


async def test_display_name_too_long_refused_on_patch_and_restart(hub):
    user = member(hub, "disp-patch", "pangeo-data:oceans")
    assert (await api(hub, user, "put", "servers", "mine", body={})).status_code == 201
    response = await api(hub, user, "patch", "servers", "mine", body={"display_name": LONG_DISPLAY})
    assert response.status_code == 400 and DISPLAY_RULE in response.json()["message"]
    hub.db.expire_all()
    assert user.orm_spawners["mine"].display_name == "mine"
    response = await api(hub, user, "post", "servers", "mine", body={"display_name": LONG_DISPLAY})
    assert response.status_code == 400 and DISPLAY_RULE in response.json()["message"]
    assert user.orm_spawners["mine"].display_name == "mine"
    assert not user.spawners["mine"].active


# --- case 4: renames keep every rule, and the disk follows the server -------


async def test_rename_to_a_name_outside_the_rule_is_refused(hub):
    user = member(hub, "renamer1", "pangeo-data:oceans")
    assert (await api(hub, user, "put", "servers", "short", body={})).status_code == 201
    response = await api(hub, user, "patch", "servers", "short", body={"name": "a" * 25})
    assert response.status_code == 400, response.text
    assert NAME_RULE in response.json()["message"]
    for bad in ("Bad_Name", "x--y"):  # JupyterHub's own slug check answers first
        response = await api(hub, user, "patch", "servers", "short", body={"name": bad})
        assert response.status_code == 400 and bad in response.json()["message"]
    hub.db.expire_all()
    assert {name for name in user.orm_spawners if name} == {"short"}


async def test_rename_moves_the_disk_and_a_new_server_gets_its_own(hub):
    user = member(hub, "renamer2", "pangeo-data:climate")
    await start_and_stop(hub, user, "old")
    old_dir = user.spawners["old"].server_directory
    (old_dir / "results.nc").write_text("kept")
    response = await api(hub, user, "patch", "servers", "old", body={"name": "renamed"})
    assert response.status_code == 200, response.text
    new_dir = user.get_spawner("renamed").server_directory
    assert (new_dir / "results.nc").read_text() == "kept"
    assert not old_dir.exists()
    # a new server under the old name starts with an empty directory of its own
    await start_and_stop(hub, user, "old")
    assert not (user.spawners["old"].server_directory / "results.nc").exists()
    # a rename onto a directory still on disk would mix two servers' files: refused
    (new_dir.parent / "taken").mkdir()
    clash = await api(hub, user, "patch", "servers", "old", body={"name": "taken"})
    assert clash.status_code == 409 and "Choose another name" in clash.json()["message"]
    hub.db.expire_all()
    assert "old" in user.orm_spawners and "taken" not in user.orm_spawners


async def test_renaming_the_default_server_counts_against_the_limit(hub):
    user = member(hub, "renamer3", "pangeo-data:oceans")
    assert (await api(hub, user, "put", "servers", "one", body={})).status_code == 201
    await start_and_stop(hub, user, "")
    response = await api(hub, user, "patch", "server", body={"name": "two"})
    assert response.status_code == 403, response.text
    assert "already has 1 named servers (one)" in response.json()["message"]
    hub.db.expire_all()
    assert set(user.orm_spawners) == {"", "one"}
