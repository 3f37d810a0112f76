"""A hub restart keeps users, servers and secrets."""

import time

import pytest

pytestmark = pytest.mark.e2e


def test_restart_keeps_users_servers_and_secrets(hub_factory):
    hub = hub_factory()
    secrets = {
        name: (hub.state_dir / name).read_text()
        for name in ("cookie_secret", "proxy_auth_token", "crypt_key")
    }
    grace = hub.login("grace")
    assert hub.api(grace, "post", "/users/grace/servers/keepme", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "keepme")
    (hub.server_home("grace", "keepme") / "work.txt").write_text("mine")

    hub.stop()
    hub.start()

    for name, value in secrets.items():
        assert (hub.state_dir / name).read_text() == value, f"{name} changed across a restart"
    # The old session cookie still works: same cookie secret, same database.
    # The hub stopped the server on shutdown (cleanup_servers); it is still listed.
    # The hub may answer before it has finished checking the servers it had (JupyterHub
    # goes on checking them in the background past init_spawners_timeout): wait for that.
    deadline = time.monotonic() + 60
    while True:
        model = hub.api(grace, "get", "/users/grace?include_stopped_servers=1")
        assert model.status_code == 200
        if model.json()["servers"]["keepme"]["stopped"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert model.json()["servers"]["keepme"]["stopped"] is True
    assert hub.api(grace, "post", "/users/grace/servers/keepme", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace", "keepme")
    assert hub.read_server_file("grace", "keepme", "work.txt") == "mine"
    log = hub.log_tail(10_000)
    for name, value in secrets.items():
        assert value.strip() not in log, f"{name} appears in the hub's log"
    for password in hub.passwords().values():
        assert password not in log


def test_a_bad_profile_stops_start_up_with_its_reason(hub_factory):
    from tests.hubprocess import HubError

    with pytest.raises(HubError) as info:
        hub_factory('c.PangeoPolicy.profiles = [{"display_name": "Huge", "cpu_limit": 999}]')
    assert "pangeohub configuration error: Profile 'Huge': cpu_limit 999.0 exceeds" in str(
        info.value
    )


def test_a_port_in_use_stops_start_up_saying_which(hub_factory):
    """Another program on the proxy's API port: the hub names the port and its setting
    (not configurable-http-proxy's EADDRINUSE and "api_request to proxy failed: 403")."""
    import socket

    from tests.hubprocess import HubError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(HubError) as info:
            hub_factory(env={"PANGEOHUB_PROXY_API_PORT": str(port)})
    message = str(info.value)
    assert (
        f"pangeohub configuration error: port {port} on 127.0.0.1, for the proxy's API "
        "(c.ConfigurableHTTPProxy.api_url; PANGEOHUB_PROXY_API_PORT with make run), is "
        "already in use by another program" in message
    ), message
    assert "403" not in message and "Traceback" not in message, message
