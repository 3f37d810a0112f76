"""The hub on a real PostgreSQL server: a restart keeps users, servers and their counts."""

import pytest

pytestmark = pytest.mark.e2e

CONFIG = """
c.JupyterHub.db_url = {db_url!r}
c.PangeoPolicy.named_server_limit = 1
c.PangeoPolicy.named_server_limit_by_group = {{"pangeo-data:climate": 2}}
"""


def test_restart_on_postgresql_keeps_users_servers_and_counts(hub_factory, postgres_url):
    import psycopg

    hub = hub_factory(CONFIG.format(db_url=postgres_url))
    grace = hub.login("grace")  # climate: 2 named servers
    for name in ("one", "two"):
        response = hub.api(grace, "post", f"/users/grace/servers/{name}", json={})
        assert response.status_code in (201, 202), response.text
        hub.wait_for_server(grace, "grace", name)
    assert hub.api(grace, "delete", "/users/grace/servers/two").status_code in (202, 204)
    hub.wait_for_stop(grace, "grace", "two")
    hub.login("katherine")

    # The hub's records are in PostgreSQL, not in a SQLite file beside the state.
    assert all(path.stat().st_size == 0 for path in hub.state_dir.glob("*.sqlite"))
    with psycopg.connect(postgres_url.replace("postgresql+psycopg", "postgresql")) as db:
        names = {row[0] for row in db.execute("SELECT name FROM users")}
        assert {"grace", "katherine"} <= names

    hub.stop()  # the hub stops its servers as it shuts down; they stay listed
    hub.start()

    model = hub.api(grace, "get", "/users/grace?include_stopped_servers=1")
    assert model.status_code == 200, "the old session cookie still signs grace in"
    servers = model.json()["servers"]
    assert servers["one"]["stopped"] is True and servers["two"]["stopped"] is True

    refused = hub.api(grace, "post", "/users/grace/servers/three", json={})
    assert refused.status_code == 403
    assert refused.json()["message"].startswith("grace already has 2 named servers (one, two)")
    for name in ("one", "two"):
        response = hub.api(grace, "post", f"/users/grace/servers/{name}", json={})
        assert response.status_code in (201, 202), response.text
        hub.wait_for_server(grace, "grace", name)
    lab = grace.get(f"{hub.url}/user/grace/one/lab", timeout=30)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    users = {u["name"] for u in hub.api(hub.login("ada"), "get", "/users").json()}
    assert {"ada", "grace", "katherine"} <= users
    for name in ("one", "two"):
        hub.api(grace, "delete", f"/users/grace/servers/{name}")
        hub.wait_for_stop(grace, "grace", name)
