"""pangeohub.configure(c): one entry point, idempotent, parts switched off by one setting,
services given the hub's own settings, and start-up checks that refuse with a reason."""

import json
import os

import pytest
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def hub_config(**sections) -> Config:
    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    for section, values in sections.items():
        for key, value in values.items():
            setattr(c[section], key, value)
    return c


def services(c) -> dict:
    return {s["name"]: s for s in c.JupyterHub.services}


def test_every_part_is_on_by_default_and_configure_is_idempotent():
    c = hub_config()
    c.JupyterHub.services = [{"name": "admins-own", "url": "http://127.0.0.1:1"}]
    pangeohub.configure(c)
    first = json.dumps(
        [c.JupyterHub.services, c.JupyterHub.load_roles], sort_keys=True, default=str
    )
    pangeohub.configure(c)
    again = json.dumps(
        [c.JupyterHub.services, c.JupyterHub.load_roles], sort_keys=True, default=str
    )
    assert first == again
    assert list(services(c)) == [
        "admins-own",
        "scratch",
        "dask-dashboards",
        "dask-gateway",
        "idle-culler",
        "binder-launcher",
    ]
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert "access:services!service=scratch" in roles["user"]["scopes"]
    assert "access:services!service=dask-gateway" in roles["server"]["scopes"]


@pytest.mark.parametrize(
    "switch, service",
    [
        ("ScratchService", "scratch"),
        ("GatewayService", "dask-gateway"),
        ("CullingPolicy", "idle-culler"),
        ("DashboardGuard", "dask-dashboards"),
        ("BinderLauncher", "binder-launcher"),
    ],
)
def test_one_setting_switches_a_part_off(switch, service):
    c = hub_config(**{switch: {"enabled": False}})
    pangeohub.configure(c)
    assert service not in services(c)
    gone = {service} | ({"dask-dashboards"} if service == "dask-gateway" else set())
    assert set(services(c)) == ALL_SERVICES - gone


ALL_SERVICES = {"scratch", "dask-dashboards", "dask-gateway", "idle-culler", "binder-launcher"}


ROLE = "arn:aws:iam::123456789012:role/hub-scratch-user"


def test_services_read_the_admins_settings_from_the_hubs_configuration(state_dir):
    c = hub_config(
        ScratchService={"backend": "s3", "expiry_check_seconds": 123},
        S3ScratchBackend={"bucket": "hub-scratch", "role_arn": ROLE},
        GatewayPolicy={"user_limits": {"clusters": 1}},
        IdleCuller={"api_page_size": 50},
        CullingPolicy={"timeout": 900, "cull_admin_servers": False},
    )
    c.GitHubTeamsAuthenticator.client_secret = "not-for-services"
    pangeohub.configure(c)
    files = state_dir / "services"
    scratch = json.loads((files / "scratch.json").read_text())
    assert scratch["ScratchService"]["backend"] == "s3"
    assert scratch["ScratchService"]["expiry_check_seconds"] == 123  # the admin's, kept
    assert scratch["S3ScratchBackend"] == {"bucket": "hub-scratch", "role_arn": ROLE}
    gateway = json.loads((files / "dask-gateway.json").read_text())
    assert gateway["GatewayPolicy"]["user_limits"] == {"clusters": 1}
    culler = json.loads((files / "idle-culler.json").read_text())
    assert culler["IdleCuller"]["timeout"] == 900 and culler["IdleCuller"]["api_page_size"] == 50
    assert culler["CullingPolicy"] == {"cull_admin_servers": False}
    for path in files.iterdir():
        assert "not-for-services" not in path.read_text()
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    # computed values reach the services as typed flags on their command line
    command = services(c)["scratch"]["command"]
    assert f"--config={files / 'scratch.json'}" in command
    assert any(a.startswith("--ScratchService.url=http://127.0.0.1:") for a in command)
    assert any(a.startswith("--Proxy.address=") for a in services(c)["dask-gateway"]["command"])


def test_scratch_expiry_follows_the_culling_schedule_unless_set(state_dir):
    c = hub_config(CullingPolicy={"every": 120})
    pangeohub.configure(c)
    scratch = json.loads((state_dir / "services" / "scratch.json").read_text())
    assert scratch["ScratchService"]["expiry_check_seconds"] == 120


@pytest.mark.parametrize(
    "settings, stop",
    [
        ({}, None),  # the gateway's own default: clusters stop with the hub, as servers do
        ({"JupyterHub": {"cleanup_servers": False}}, False),  # servers run on: so do clusters
        (
            {
                "JupyterHub": {"cleanup_servers": False},
                "PangeoLocalBackend": {"stop_clusters_on_shutdown": True},
            },
            True,  # the admin's own choice wins
        ),
    ],
)
def test_clusters_outlive_a_hub_restart_exactly_when_servers_do(state_dir, settings, stop):
    pangeohub.configure(hub_config(**settings))
    gateway = json.loads((state_dir / "services" / "dask-gateway.json").read_text())
    assert gateway.get("PangeoLocalBackend", {}).get("stop_clusters_on_shutdown") is stop


@pytest.mark.parametrize(
    "settings, guarded",
    [
        ({}, True),  # the guard is on: clusters' own HTTP ports answer only its key
        ({"DashboardGuard": {"enabled": False}}, False),  # dashboards open, as upstream's
        ({"PangeoLocalBackend": {"dashboards_guarded": False}}, False),  # the admin's choice
    ],
)
def test_clusters_answer_only_the_guard_while_it_is_on(state_dir, settings, guarded):
    pangeohub.configure(hub_config(**settings))
    gateway = json.loads((state_dir / "services" / "dask-gateway.json").read_text())
    assert gateway["PangeoLocalBackend"]["dashboards_guarded"] is guarded
    # the key's secret is made before the gateway and the guard first read it
    assert (state_dir / "dask_dashboards_key").exists() is (settings.get("DashboardGuard") is None)


def test_the_hub_stops_servers_before_its_services():
    """JupyterHub's clean-up, patched once: servers (and their clusters) first."""
    from jupyterhub.app import JupyterHub

    from pangeohub.shutdown import PATCHED

    pangeohub.configure(hub_config())
    cleanup = JupyterHub.cleanup
    pangeohub.configure(hub_config())
    assert JupyterHub.cleanup is cleanup and getattr(cleanup, PATCHED)
    assert getattr(JupyterHub.check_services_health, PATCHED)


def test_jupyterhubs_extra_handlers_line_is_kept_for_the_admins_own_handlers_only():
    import logging

    from pangeohub.hub_handlers import OwnHandlersOnly

    hub_log = logging.getLogger("JupyterHub")
    pangeohub.configure(hub_config())  # pangeohub's own routes only: no line
    assert any(isinstance(f, OwnHandlersOnly) for f in hub_log.filters)
    record = logging.LogRecord(
        "JupyterHub",
        logging.WARNING,
        "",
        0,
        "JupyterHub.extra_handlers is deprecated in JupyterHub 3.1.",
        None,
        None,
    )
    assert not hub_log.filter(record)
    c = hub_config()
    c.JupyterHub.extra_handlers = [("/admins/own", object)]
    pangeohub.configure(c)  # the admin's own: JupyterHub's advice is for them
    assert hub_log.filter(record)


def test_a_refused_spawn_form_is_one_warning_line_not_an_error_with_a_traceback():
    import logging
    import sys

    from tornado import web

    from pangeohub.policy import PolicyError
    from pangeohub.refusal import FORM_FAILURE, refusal

    hub_log = logging.getLogger("JupyterHub")
    pangeohub.configure(hub_config())

    def logged(error: Exception) -> logging.LogRecord:
        try:
            raise error
        except Exception:
            exc_info = sys.exc_info()
        record = logging.LogRecord("JupyterHub", logging.ERROR, "", 0, FORM_FAILURE, None, exc_info)
        assert hub_log.filter(record)  # kept, as one line
        return record

    refused = logged(refusal(PolicyError(403, "You may not use the profile 'large'.")))
    assert refused.levelno == logging.WARNING and refused.exc_info is None
    assert refused.getMessage() == "Spawn form refused (403): You may not use the profile 'large'."
    failed = logged(web.HTTPError(500, "the hub's own failure"))  # not the person's doing
    assert failed.levelno == logging.ERROR and failed.exc_info is not None
    crashed = logged(RuntimeError("a bug"))
    assert crashed.levelno == logging.ERROR and crashed.exc_info is not None


def test_no_pangeohub_variable_carries_settings_to_a_service():
    c = hub_config()
    pangeohub.configure(c)
    for service in services(c).values():
        names = {n for n in service.get("environment", {}) if n.startswith("PANGEOHUB_")}
        assert names <= {"PANGEOHUB_STATE_DIR"}, names


def test_a_setting_a_service_cannot_read_is_refused_by_name():
    c = hub_config(GatewayPolicy={"environment_hooks": [print]})
    with pytest.raises(ConfigurationError, match="c.GatewayPolicy.environment_hooks"):
        pangeohub.configure(c)


def test_in_cluster_addresses_for_kubernetes():
    c = hub_config(
        ScratchService={"url": "http://0.0.0.0:10101"},
        GatewayService={
            "managed": False,
            "service_url": "http://traefik-dask-gateway",
            "address": "http://traefik-dask-gateway/services/dask-gateway",
            "proxy_address": "gateway://traefik-dask-gateway:80",
        },
    )
    c.ScratchEnvironment.service_url = "http://hub:10101/services/scratch/"
    pangeohub.configure(c)
    scratch = services(c)["scratch"]
    assert scratch["url"] == "http://127.0.0.1:10101"  # the proxy beside the service
    assert "--ScratchService.url=http://0.0.0.0:10101" in scratch["command"]
    assert c.ScratchEnvironment.service_url == "http://hub:10101/services/scratch/"
    gateway = services(c)["dask-gateway"]
    assert "command" not in gateway and gateway["url"] == "http://traefik-dask-gateway"


def test_profile_over_a_bound_stops_the_hub_with_the_reason():
    c = hub_config(PangeoPolicy={"max_cpu_limit": 2.0})
    c.PangeoPolicy.profiles = [{"display_name": "Huge", "cpu_limit": 8}]
    with pytest.raises(ConfigurationError, match="'Huge': cpu_limit 8.0 exceeds"):
        pangeohub.configure(c)


def test_a_shared_claim_template_stops_the_hub():
    c = hub_config(KubeSpawner={"pvc_name_template": "claim-{username}"})
    with pytest.raises(ConfigurationError, match="must contain {user_server}"):
        pangeohub.configure(c)


def test_a_destructive_culler_setting_stops_the_hub():
    c = hub_config(IdleCuller={"remove_named_servers": True})
    with pytest.raises(ConfigurationError, match="Culling must only stop servers"):
        pangeohub.configure(c)
