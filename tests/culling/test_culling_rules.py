"""The culler's settings, its refusal of destructive flags, and its decisions."""

import logging
from datetime import timedelta

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError
from pangeohub.culling import CullArbiter, CullingPolicy, OneLineFailures, destructive_culling

log = logging.getLogger("test-culler")


def test_defaults_two_hours_every_ten_minutes_only_stopping():
    policy = CullingPolicy()
    culler = policy.settings(Config())["IdleCuller"]
    assert culler["timeout"] == 7200 and culler["cull_every"] == 600 and culler["max_age"] == 0
    assert culler["remove_named_servers"] is False and culler["cull_users"] is False
    command = policy.command()
    assert "--remove-named-servers=False" in command and "--cull-users=False" in command
    assert policy.scopes() == [
        "list:users",
        "read:users:activity",
        "read:servers",
        "delete:servers",
    ]


def test_sparing_admins_adds_only_the_scope_to_see_roles():
    assert CullingPolicy(cull_admin_servers=False).scopes()[-1] == "read:roles:users"


def test_apply_registers_service_and_role_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path))
    config = Config()
    config.JupyterHub.services = [{"name": "other", "url": "http://127.0.0.1:1"}]
    policy = CullingPolicy(timeout=60, every=5)
    policy.apply(config)
    policy.apply(config)
    names = [s["name"] for s in config.JupyterHub.services]
    assert names == ["other", "idle-culler"]
    (role,) = config.JupyterHub.load_roles
    assert role["services"] == ["idle-culler"] and "admin:users" not in role["scopes"]


def test_disabled_registers_nothing():
    config = Config()
    CullingPolicy(enabled=False).apply(config)
    assert "services" not in config.JupyterHub


@pytest.mark.parametrize(
    "args",
    [
        ["--remove-named-servers"],
        ["--remove-named-servers=True"],
        ["--remove-named-servers", "true"],
        ["--cull-users=1"],
    ],
)
def test_destructive_culler_flags_refused_at_start_up(args):
    config = Config()
    config.JupyterHub.services = [
        {"name": "my-culler", "command": ["python3", "-m", "jupyterhub_idle_culler", *args]}
    ]
    assert "deletes" in destructive_culling(config)
    with pytest.raises(ConfigurationError, match="Culling must only stop servers"):
        pangeohub.configure(config)


def test_appended_services_are_read_too(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path))
    config = Config()
    config.JupyterHub.services.append(
        {"name": "old", "command": ["python3", "-m", "jupyterhub_idle_culler", "--cull-users"]}
    )
    assert "deletes users" in destructive_culling(config)
    CullingPolicy().apply(config)
    assert [s["name"] for s in config.JupyterHub.services] == ["old", "idle-culler"]


def test_explicitly_false_flags_are_fine():
    config = Config()
    config.JupyterHub.services = [
        {"name": "c", "command": ["jupyterhub-idle-culler", "--remove-named-servers=false"]},
        {"name": "not-a-culler", "command": ["x", "--cull-users"]},
    ]
    assert destructive_culling(config) is None


async def test_arbiter_never_culls_on_missing_activity(caplog):
    arbiter = CullArbiter(log)
    server = {"full_name": "grace/one", "last_activity": None}
    assert await arbiter(timedelta(hours=5), 60, server) is False
    assert "no last activity" in caplog.text


async def test_arbiter_culls_only_past_the_limit():
    arbiter = CullArbiter(log)
    server = {"full_name": "grace/one", "last_activity": "2026-01-01T00:00:00Z"}
    assert await arbiter(timedelta(seconds=59), 60, server) is False
    assert await arbiter(timedelta(seconds=60), 60, server) is True


async def test_arbiter_spares_admins_when_told(monkeypatch):
    arbiter = CullArbiter(log, cull_admin_servers=False)

    async def is_admin(name):
        return name == "ada"

    monkeypatch.setattr(arbiter, "_is_admin", is_admin)
    active = "2026-01-01T00:00:00Z"
    assert (
        await arbiter(timedelta(hours=3), 60, {"full_name": "ada/", "last_activity": active})
        is False
    )
    assert (
        await arbiter(timedelta(hours=3), 60, {"full_name": "bo/x", "last_activity": active})
        is True
    )


async def test_arbiter_does_not_cull_when_admin_status_is_unknown():
    arbiter = CullArbiter(log, cull_admin_servers=False, api_url="http://127.0.0.1:9", token="t")
    server = {"full_name": "ada/", "last_activity": "2026-01-01T00:00:00Z"}
    assert await arbiter(timedelta(hours=3), 60, server) is False


@pytest.mark.parametrize(
    "error, message",
    [
        (HTTPClientError(403), "HTTP 403 (is the culler's token revoked?)"),
        (ConnectionRefusedError(111, "Connection refused"), "Could not reach the hub"),
    ],
)
def test_culler_failures_are_one_clear_line_and_retried(error, message):
    """tornado logs a failed check's exception; the filter makes it one line."""
    import sys

    try:
        raise error
    except Exception:
        record = logging.LogRecord(
            "tornado.application",
            logging.ERROR,
            __file__,
            1,
            "Exception in callback %r",
            ("cull",),
            sys.exc_info(),
        )
    assert OneLineFailures().filter(record)
    text = logging.Formatter().format(record)
    assert message in text and "retrying at the next check" in text
    assert "Traceback" not in text


async def test_each_server_the_culler_stops_is_counted_for_prometheus():
    from pangeohub.culling import CULLED

    arbiter = CullArbiter(logging.getLogger("test"))
    before = CULLED._value.get()
    server = {"name": "", "full_name": "grace/", "last_activity": "2026-01-01T00:00:00Z"}
    assert not await arbiter(timedelta(seconds=10), 60, server)
    assert CULLED._value.get() == before
    assert await arbiter(timedelta(seconds=600), 60, server)
    assert CULLED._value.get() == before + 1


def test_culler_metrics_port_reaches_the_service_only_when_set():
    assert "metrics_port" not in CullingPolicy().settings(Config())["CullingPolicy"]
    policy = CullingPolicy(metrics_port=9471).settings(Config())["CullingPolicy"]
    assert policy["metrics_port"] == 9471 and policy["metrics_ip"] == "127.0.0.1"
