"""configure(c) reads pangeohub's settings and never writes computed values back; what
reaches each service follows from the classes the service configures."""

from __future__ import annotations

import copy
import json
import sys

import pytest
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError
from pangeohub.endpoints import hub_ports
from pangeohub.gateway.dashboard import DashboardGuard
from pangeohub.gateway.hub import GatewayService, managed_gateway_classes
from pangeohub.hubconfig import service_settings
from pangeohub.policy import PangeoPolicy
from pangeohub.scratch.hook import ScratchEnvironment

OWN_SECTIONS = ("GatewayService", "DashboardGuard", "ScratchService", "ScratchEnvironment")


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def hub_config() -> Config:
    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    c.JupyterHub.base_url = "/hub-here/"
    return c


def services(c) -> dict:
    return {s["name"]: s for s in c.JupyterHub.services}


def test_configure_writes_no_computed_value_into_pangeohubs_sections():
    c = hub_config()
    c.GatewayService.request_timeout = 5  # the admin's own, kept as it is
    before = {name: dict(c[name]) for name in OWN_SECTIONS}
    pangeohub.configure(c)
    assert {name: dict(c[name]) for name in OWN_SECTIONS} == before


def changed_sections(c: Config, before: Config) -> set[str]:
    """The sections but JupyterHub's own whose values differ from ``before``'s."""
    names = (set(c) | set(before)) - {"JupyterHub"}
    return {k for k in names if dict(c.get(k) or {}) != dict(before.get(k) or {})}


@pytest.mark.parametrize("spawner", ["pangeo-local", "pangeo-kubernetes"])
def test_configure_writes_into_jupyterhubs_section_only(spawner):
    """Launch links' token, the picker under another base URL, ports: computed where
    they are read, so every section but JupyterHub's own is as the admin wrote it."""
    c = hub_config()
    c.JupyterHub.spawner_class = spawner
    before = copy.deepcopy(c)
    pangeohub.configure(c)
    assert changed_sections(c, before) == set()


# what Zero to JupyterHub's values put on KubeSpawner (deploy/values.yaml's image, the
# chart's own defaults for the rest) and an admin's own template path
CHART_SETS = {
    "image": "pangeo/pangeo-notebook:2024.01.15",
    "profile_list": [],
    "cpu_limit": 2.0,
    "mem_limit": "8G",
    "mem_guarantee": "1G",
    "storage_capacity": "10Gi",
    "additional_profile_form_template_paths": ["/admin/templates"],
}


def test_on_kubernetes_with_the_charts_values_configure_writes_into_jupyterhubs_section_only():
    """The main Kubernetes path (base URL "/", so fancy-profiles' picker is on, and the
    chart's singleuser values): the chart's values are read where they are used (the
    policy's defaults, the spawner's profile list and template paths), never copied
    into c.PangeoPolicy or back into c.KubeSpawner."""
    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    c.JupyterHub.spawner_class = "pangeo-kubernetes"
    c.JupyterHub.base_url = "/"
    for key, value in CHART_SETS.items():
        c.KubeSpawner[key] = value
    before = copy.deepcopy(c)
    pangeohub.configure(c)
    assert changed_sections(c, before) == set()
    # what the assembly adds is in JupyterHub's own section: services, roles, handlers
    assert {"dask-gateway", "scratch"} <= set(services(c))
    assert "/fancy-profiles/static/(.*)" in [h[0] for h in c.JupyterHub.extra_handlers]

    policy = PangeoPolicy(config=c)  # the chart's values are its defaults
    assert (policy.default_image, policy.default_cpu_limit) == (CHART_SETS["image"], 2.0)
    assert (policy.default_mem_limit, policy.default_disk_size) == ("8G", "10Gi")
    (small,) = policy.all_profiles()
    assert (small.image, small.mem_limit, small.disk_size) == (
        CHART_SETS["image"],
        8 << 30,
        10 << 30,
    )


def test_servers_hooks_reach_the_services_where_the_hub_registered_them():
    """JupyterHub's spawners get a copy of the configuration (traitlets merges the file's
    into the application's): with nothing written back, they agree with the hub through
    the hub's record of the ports it chose."""
    c = hub_config()
    pangeohub.configure(c)
    copied = copy.deepcopy(c)
    registered = services(c)
    ports = hub_ports()

    gateway = GatewayService(config=copied)
    guard = DashboardGuard(config=copied)
    assert (gateway.port, gateway.scheduler_port) == (ports.gateway, ports.gateway_scheduler)
    assert guard.port == ports.dashboard_guard
    assert gateway.prefix == "/hub-here/services/dask-gateway"
    assert registered["dask-gateway"]["url"] == gateway.service_url
    assert gateway.service_url == f"http://127.0.0.1:{guard.port}"  # through the guard
    command = registered["dask-gateway"]["command"]
    assert f"--Proxy.address=127.0.0.1:{gateway.port}" in command
    assert f"--Proxy.tcp_address=127.0.0.1:{gateway.scheduler_port}" in command
    assert f"--Proxy.prefix={gateway.prefix}" in command

    scratch = ScratchEnvironment(config=copied)
    assert scratch.service_url == f"http://127.0.0.1:{ports.scratch}/hub-here/services/scratch/"
    assert registered["scratch"]["url"] == f"http://127.0.0.1:{ports.scratch}"
    assert (
        f"--ScratchService.url=http://127.0.0.1:{ports.scratch}" in registered["scratch"]["command"]
    )

    pangeohub.configure(c)  # again: the same ports
    assert services(c) == registered


def test_the_guard_reads_its_port_from_its_settings_file(state_dir):
    c = hub_config()
    pangeohub.configure(c)
    settings = json.loads((state_dir / "services" / "dask-dashboards.json").read_text())
    assert settings["DashboardGuard"]["port"] == hub_ports().dashboard_guard


def test_the_admins_ports_win_over_the_chosen_ones():
    c = hub_config()
    c.GatewayService.port = 18787
    c.ScratchService.url = "http://127.0.0.1:18788"
    c.DashboardGuard.enabled = False
    pangeohub.configure(c)
    assert services(c)["dask-gateway"]["url"] == "http://127.0.0.1:18787"
    assert "--ScratchService.url=http://127.0.0.1:18788" in services(c)["scratch"]["command"]


def test_the_gateway_gets_the_sections_of_what_it_configures_and_never_the_hubs():
    c = Config()
    sections = [
        "GatewayPolicy",
        "PangeoBackendMixin",
        "PangeoLocalBackend",
        "PangeoIsolatedLocalBackend",
        "Isolation",
        "Environments",
        "DaskGateway",
        "Backend",
        "DBBackendBase",
        "LocalBackend",
        "UnsafeLocalBackend",
        "ClusterConfig",
        "LocalClusterConfig",
        "JupyterHubAuthenticator",
    ]
    for section in sections:
        c[section].marker = section
    c.Proxy.api_url = "http://the-hubs-own-proxy"  # JupyterHub's Proxy, not dask-gateway's
    c.Authenticator.admin_users = {"the-hubs-own"}
    c.Spawner.cmd = ["the-hubs-own"]
    settings = service_settings(c, managed_gateway_classes(c))
    assert sorted(settings) == sorted(sections)


# An admin's own backend, in a package of theirs (the name is this test's own, so only
# the hub's import of it can make it known).
OWN_BACKEND = """
from dask_gateway_server.backends.base import Backend
from traitlets import Unicode
from traitlets.config import Configurable


class PBSQueue(Configurable):
    name = Unicode("", config=True)


class PBSBackend(Backend):
    classes = [PBSQueue]
    queue = Unicode("", config=True)
"""


@pytest.fixture
def own_backend(tmp_path, monkeypatch):
    (tmp_path / "site_pbs_backend.py").write_text(OWN_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "site_pbs_backend" not in sys.modules
    yield "site_pbs_backend.PBSBackend"
    sys.modules.pop("site_pbs_backend", None)


def test_an_admins_own_backend_and_what_it_declares_reach_the_gateway(own_backend, state_dir):
    c = hub_config()
    c.DaskGateway.backend_class = own_backend  # a string: never imported by the admin's file
    c.PBSBackend.queue = "regular"
    c.PBSQueue.name = "short"
    pangeohub.configure(c)
    settings = json.loads((state_dir / "services" / "dask-gateway.json").read_text())
    assert settings["DaskGateway"] == {"backend_class": own_backend}
    assert settings["PBSBackend"] == {"queue": "regular"}
    assert settings["PBSQueue"] == {"name": "short"}  # declared in the backend's classes
    assert "Proxy" not in settings and "Spawner" not in settings


def test_a_backend_the_hub_cannot_import_stops_it_in_one_line():
    c = hub_config()
    c.DaskGateway.backend_class = "no_such_package.PBSBackend"
    with pytest.raises(ConfigurationError) as stopped:
        pangeohub.configure(c)
    message = str(stopped.value)
    assert "c.DaskGateway.backend_class is 'no_such_package.PBSBackend'" in message
    assert "\n" not in message
