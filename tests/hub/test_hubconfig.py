"""Wiring helpers keep what the admin configured and add pangeohub's parts once."""

from traitlets.config import Config

from pangeohub.hubconfig import grant_scopes, register_service


def test_register_service_keeps_the_admins_and_replaces_by_name():
    c = Config()
    c.JupyterHub.services.append({"name": "admins-own", "url": "http://127.0.0.1:1"})
    register_service(c, {"name": "scratch", "url": "http://127.0.0.1:2"})
    register_service(c, {"name": "scratch", "url": "http://127.0.0.1:3"})
    assert [(s["name"], s["url"][-1]) for s in c.JupyterHub.services] == [
        ("admins-own", "1"),
        ("scratch", "3"),
    ]


def test_grant_scopes_extends_existing_roles_and_creates_defaults():
    c = Config()
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "custom"], "groups": ["g"]}]
    grant_scopes(c, "user", ["access:services!service=scratch"])
    grant_scopes(c, "user", ["access:services!service=scratch"])
    grant_scopes(c, "server", ["access:services!service=scratch"])
    user, server = c.JupyterHub.load_roles
    assert user == {
        "name": "user",
        "scopes": ["self", "custom", "access:services!service=scratch"],
        "groups": ["g"],
    }
    assert server["scopes"] == [
        "users:activity!user",
        "access:servers!server",
        "access:services!service=scratch",
    ]


def test_free_ports_are_out_of_reach_of_outgoing_connections():
    """A service binds its port seconds after configure(c) picked it: the port comes from
    below the kernel's ephemeral range, which outgoing connections draw from."""
    from pangeohub.hubconfig import _ephemeral_ports, free_port

    ports = {free_port() for _ in range(20)}
    if _ephemeral_ports().start > 21000:  # else no room below it: bind(0) is all there is
        assert all(20000 <= port < _ephemeral_ports().start for port in ports)


def test_a_free_port_is_never_handed_out_twice_but_its_server_binds_it():
    """The hub's config and the tests each pick ports before anything listens on them; a
    port handed out stays refused to the next pick (in any process) for a minute, and the
    server it was picked for, binding with SO_REUSEADDR as all of them do, gets it."""
    import socket
    import subprocess
    import sys

    from pangeohub.hubconfig import free_port

    ports = [free_port() for _ in range(300)]
    elsewhere = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pangeohub.hubconfig import free_port as f\nprint(*[f() for _ in range(300)])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert len(set(ports) | {int(port) for port in elsewhere}) == 600
    for port in ports[:20]:
        with socket.socket() as plain:
            try:
                plain.bind(("127.0.0.1", port))
            except OSError:
                pass
            else:
                raise AssertionError(f"port {port} could be picked again")
        with socket.socket() as server:
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            server.bind(("127.0.0.1", port))
            server.listen()
