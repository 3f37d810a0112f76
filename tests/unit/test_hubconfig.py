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
    import socket

    from pangeohub.hubconfig import _ephemeral_ports, free_port

    ports = {free_port() for _ in range(20)}
    if _ephemeral_ports().start > 21000:  # else no room below it: bind(0) is all there is
        assert all(20000 <= port < _ephemeral_ports().start for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
