"""The real hub (jupyterhub + configurable-http-proxy + pangeohub's config), driven over HTTP
as an admin and users would."""

from pathlib import Path

import pytest
import requests

from tests.spawn_page import offered_profiles

pytestmark = pytest.mark.e2e

# The shipped sample configuration, with a smaller named-server limit to keep the test quick.
CONFIG = """
c.PangeoPolicy.named_server_limit = 1
c.PangeoPolicy.named_server_limit_by_group = {"pangeo-data:climate": 2}
"""


@pytest.fixture(scope="module")
def hub(postgres, tmp_path_factory):
    """The hub on a real PostgreSQL server, the database production hubs keep (every other
    end-to-end module runs on the default SQLite file)."""
    from tests.hubprocess import HubProcess

    db_url = postgres.create_database("e2e_hub")
    config = CONFIG + f"\nc.JupyterHub.db_url = {db_url!r}\n"
    hub = HubProcess(tmp_path_factory.mktemp("e2e-postgresql"), extra_config=config)
    hub.db_url = db_url
    hub.start()
    yield hub
    hub.stop()


def token(hub, session, user):
    response = hub.api(session, "post", f"/users/{user}/tokens", json={"note": "e2e"})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def server_files(hub, user, server, api_token):
    prefix = f"/user/{user}/{server}/" if server else f"/user/{user}/"
    response = requests.get(
        f"{hub.url}{prefix}api/contents/",
        headers={"Authorization": f"token {api_token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return {item["name"] for item in response.json()["content"]}


def server_dir(hub, user, server) -> Path:
    return hub.server_home(user, server)


def test_sign_in_with_wrong_password_is_refused(hub):
    with pytest.raises(Exception, match="sign-in as grace failed: 403"):
        hub.login("grace", password="not-it")


def test_spawn_page_shows_only_the_users_profiles(hub):
    grace = hub.login("grace")  # pangeo-data:climate
    katherine = hub.login("katherine")  # pangeo-data:oceans
    page = grace.get(f"{hub.url}/hub/spawn", timeout=10)
    assert offered_profiles(page.text) == ["small", "large"]
    page = katherine.get(f"{hub.url}/hub/spawn", timeout=10)
    assert page.status_code == 200
    assert offered_profiles(page.text) == ["small"]


def test_forbidden_profile_refused_through_api_and_form(hub):
    katherine = hub.login("katherine")
    response = hub.api(
        katherine, "post", "/users/katherine/server", json={"user_options": {"profile": "large"}}
    )
    assert response.status_code == 403
    assert response.json()["message"] == (
        "You may not use the profile 'large'. Choose one of: 'small'."
    )
    form = katherine.post(
        f"{hub.url}/hub/spawn",
        data={"profile": "large", "_xsrf": katherine.cookies.get("_xsrf", path="/hub/")},
        timeout=10,
    )
    assert form.status_code == 403
    assert "You may not use the profile" in form.text
    model = hub.api(katherine, "get", "/users/katherine").json()
    assert not model["servers"]
    # the person's mistake is one warning line in the hub's log, not an error's traceback
    log = hub.log_path.read_text()
    assert "Spawn form refused (403): You may not use the profile 'large'" in log
    assert "Failed to spawn single-user server with form" not in log


def test_servers_up_to_the_limit_then_a_clear_refusal(hub):
    grace = hub.login("grace")  # climate: 2 named servers
    api_token = token(hub, grace, "grace")
    for name, profile in (("", "large"), ("one", "small"), ("two", None)):
        path = f"/users/grace/servers/{name}" if name else "/users/grace/server"
        body = {"user_options": {"profile": profile}} if profile else {}
        response = hub.api(grace, "post", path, json=body)
        assert response.status_code in (201, 202), response.text
        hub.wait_for_server(grace, "grace", name)
    lab = grace.get(f"{hub.url}/user/grace/one/lab", timeout=30)
    assert lab.status_code == 200 and "JupyterLab" in lab.text

    refused = hub.api(grace, "post", "/users/grace/servers/three", json={})
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("grace already has 2 named servers (one, two)")
    assert "three" not in hub.api(grace, "get", "/users/grace").json()["servers"]

    # Each server has its own directory.
    server_dir(hub, "grace", "one").joinpath("notes.txt").write_text("kept")
    assert "notes.txt" in server_files(hub, "grace", "one", api_token)
    assert "notes.txt" not in server_files(hub, "grace", "two", api_token)
    assert "notes.txt" not in server_files(hub, "grace", "", api_token)

    # Stopping keeps the directory; starting again finds the file.
    assert hub.api(grace, "delete", "/users/grace/servers/one").status_code in (202, 204)
    hub.wait_for_stop(grace, "grace", "one")
    assert hub.read_server_file("grace", "one", "notes.txt") == "kept"
    assert hub.api(grace, "post", "/users/grace/servers/one", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "one")
    assert "notes.txt" in server_files(hub, "grace", "one", api_token)

    # Deleting the server deletes its directory, and frees a place for a new one.
    response = hub.api(grace, "delete", "/users/grace/servers/one", json={"remove": True})
    assert response.status_code in (202, 204)
    hub.wait_for_removal(grace, "grace", "one")
    assert not hub.server_disk_exists("grace", "one")
    assert hub.server_disk_exists("grace", "two")
    assert hub.api(grace, "post", "/users/grace/servers/three", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "three")
    for name in ("two", "three"):
        hub.api(grace, "delete", f"/users/grace/servers/{name}")
    hub.api(grace, "delete", "/users/grace/server")


@pytest.mark.parametrize(
    "name, status",
    [("Bad_Name", 400), ("a-name-much-too-long-x", 400), ("x--y", 400), ("ok-name", None)],
)
def test_server_names_follow_the_rule(hub, name, status):
    katherine = hub.login("katherine")
    response = hub.api(katherine, "post", f"/users/katherine/servers/{name}", json={})
    if status is None:
        assert response.status_code in (201, 202)
        hub.wait_for_server(katherine, "katherine", name)
        hub.api(katherine, "delete", f"/users/katherine/servers/{name}", json={"remove": True})
        hub.wait_for_removal(katherine, "katherine", name)
        return
    assert response.status_code == status
    message = response.json()["message"]
    assert "at most 20 characters: lowercase letters, digits and single hyphens" in message
    assert name not in hub.api(katherine, "get", "/users/katherine").json()["servers"]


def test_admin_is_held_to_the_target_users_limit(hub):
    ada = hub.login("ada")  # admin
    katherine = hub.login("katherine")  # oceans: 1 named server
    assert hub.api(ada, "post", "/users/katherine/servers/first", json={}).status_code in (201, 202)
    hub.wait_for_server(ada, "katherine", "first")
    refused = hub.api(ada, "post", "/users/katherine/servers/second", json={})
    assert refused.status_code == 403
    assert "katherine already has 1 named servers (first)" in refused.json()["message"]
    hub.api(katherine, "delete", "/users/katherine/servers/first", json={"remove": True})
    hub.wait_for_removal(katherine, "katherine", "first")


def metric(text: str, line_start: str) -> float | None:
    """The value of the first exposition line starting with ``line_start``."""
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_servers_by_profile_and_scratch_requests(hub):
    ada = hub.login("ada")  # admins hold read:metrics
    grace = hub.login("grace")

    def running(profile: str) -> float:
        text = ada.get(f"{hub.url}/hub/metrics", timeout=10).text
        return metric(text, f'pangeohub_servers_running{{profile="{profile}"}}') or 0.0

    hub.wait_for_stop(grace, "grace", "")  # an earlier test stopped it; counted until then
    before = running("large")
    body = {"user_options": {"profile": "large"}}  # her default server (named ones are used)
    assert hub.api(grace, "post", "/users/grace/server", json=body).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "")
    assert running("large") == before + 1
    assert hub.api(grace, "delete", "/users/grace/server").status_code in (202, 204)
    hub.wait_for_stop(grace, "grace", "")
    assert running("large") == before

    scratch = f"{hub.url}/services/scratch/"

    def scratch_count(name: str) -> float:
        text = requests.get(scratch + "metrics", timeout=10).text
        return metric(text, name) or 0.0

    requests_line = 'pangeohub_scratch_credential_requests_total{backend="local"}'
    failures_line = 'pangeohub_scratch_credential_failures_total{backend="local",status="401"}'
    asked, failed = scratch_count(requests_line), scratch_count(failures_line)
    good = {"Authorization": f"token {token(hub, grace, 'grace')}"}
    assert requests.get(scratch + "credentials", headers=good, timeout=10).status_code == 200
    bad = {"Authorization": "token not-a-token-of-this-hub"}
    assert requests.get(scratch + "credentials", headers=bad, timeout=10).status_code == 401
    assert scratch_count(requests_line) == asked + 2
    assert scratch_count(failures_line) == failed + 1


def test_restart_on_postgresql_keeps_users_servers_and_counts(hub):
    """Last in this module: the servers earlier tests left stopped are still listed after
    a restart, and still count against the limit."""
    import psycopg

    grace = hub.login("grace")  # climate: 2 named servers
    for name in ("two", "three"):
        hub.wait_for_stop(grace, "grace", name)
    # The hub's records are in PostgreSQL, not in a SQLite file beside the state.
    assert all(path.stat().st_size == 0 for path in hub.state_dir.glob("*.sqlite"))
    with psycopg.connect(hub.db_url.replace("postgresql+psycopg", "postgresql")) as db:
        names = {row[0] for row in db.execute("SELECT name FROM users")}
        assert {"ada", "grace", "katherine"} <= names

    hub.stop()
    hub.start()

    model = hub.api(grace, "get", "/users/grace?include_stopped_servers=1")
    assert model.status_code == 200, "the old session cookie still signs grace in"
    servers = model.json()["servers"]
    assert servers["two"]["stopped"] is True and servers["three"]["stopped"] is True
    refused = hub.api(grace, "post", "/users/grace/servers/four", json={})
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("grace already has 2 named servers (")
    assert hub.api(grace, "post", "/users/grace/servers/two", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "two")
    lab = grace.get(f"{hub.url}/user/grace/two/lab", timeout=30)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    users = {u["name"] for u in hub.api(hub.login("ada"), "get", "/users").json()}
    assert {"ada", "grace", "katherine"} <= users
    hub.api(grace, "delete", "/users/grace/servers/two")
    hub.wait_for_stop(grace, "grace", "two")
