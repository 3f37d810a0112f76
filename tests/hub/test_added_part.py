"""A service the hub starts, added by another package: its part, registered under the
``pangeohub.parts`` entry point group, is wired by ``pangeohub.configure(c)`` as
pangeohub's own are, and its settings reach the service (docs/contributing-parts.md)."""

from __future__ import annotations

import copy
import json
import sys

import pytest
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError
from pangeohub.endpoints import added_service_port
from pangeohub.kube_sections import KUBE_SPAWNERS
from tests.installed_package import install_module

TINY = '''
import sys

from traitlets import Bool, Int, Unicode
from traitlets.config import Application, Configurable

from pangeohub.endpoints import added_service_port
from pangeohub.hubconfig import (
    class_family,
    grant_scopes,
    register_role,
    register_service,
    service_settings,
    write_service_settings,
)
from pangeohub.state import STATE_DIR_ENV, StateDirectory

NAME = "greeter"


class Greeter(Configurable):
    """The greeter service's settings, read by the hub and by the service."""

    enabled = Bool(True, help="Run the greeter service.").tag(config=True)
    greeting = Unicode("hello", help="What the greeter says.").tag(config=True)
    port = Int(0, help="Where it listens on loopback (0: a free port).").tag(config=True)


SERVICE_CLASSES = [Greeter]


def wire_greeter(c):
    """Register the greeter service, its settings file and its role."""
    settings = Greeter(config=c)
    if not settings.enabled:
        return
    port = settings.port or added_service_port(NAME)
    path = write_service_settings(NAME, service_settings(c, SERVICE_CLASSES))
    register_service(
        c,
        {
            "name": NAME,
            "url": f"http://127.0.0.1:{port}",
            "command": [
                sys.executable, "-m", "tiny_part", f"--config={path}", f"--Greeter.port={port}"
            ],
            "environment": {STATE_DIR_ENV: str(StateDirectory.from_env().path)},
        },
    )
    register_role(c, {"name": NAME, "scopes": ["list:users"], "services": [NAME]})
    grant_scopes(c, "user", [f"access:services!service={NAME}"])


class GreeterApp(Application):
    """The greeter service, started by the hub with its settings file."""

    classes = class_family(SERVICE_CLASSES)
    aliases = {"config": "GreeterApp.config_file"}
    config_file = Unicode("", help="The settings file the hub wrote.").tag(config=True)

    def initialize(self, argv=None):
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
        self.greeter = Greeter(parent=self)
'''


@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    """A package installed the way pip installs one: its module and its entry point."""
    install_module(
        tmp_path,
        monkeypatch,
        "tiny_part",
        TINY,
        "[pangeohub.parts] greeter = tiny_part:wire_greeter",
    )
    return tmp_path / "state"


def hub_config() -> Config:
    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    c.JupyterHub.services = [{"name": "admins-own", "url": "http://127.0.0.1:1"}]
    return c


def services(c) -> dict:
    return {s["name"]: s for s in c.JupyterHub.services}


def test_an_added_part_wires_its_service_and_its_settings_reach_it(tiny_package):
    c = hub_config()
    c.Greeter.greeting = "bonjour"
    c.Proxy.auth_token = "the-hubs-own"  # a JupyterHub section: never the service's
    before = copy.deepcopy(c)
    pangeohub.configure(c)

    # after pangeohub's own services, beside the admin's, with a command, an environment
    # and a role, as pangeohub's services get them
    assert list(services(c))[0] == "admins-own"
    assert list(services(c))[-1] == "greeter"
    greeter = services(c)["greeter"]
    port = added_service_port("greeter")
    assert greeter["url"] == f"http://127.0.0.1:{port}"
    assert greeter["command"][:3] == [sys.executable, "-m", "tiny_part"]
    assert greeter["environment"] == {"PANGEOHUB_STATE_DIR": str(tiny_package.resolve())}
    roles = {r["name"]: r for r in c.JupyterHub.load_roles}
    assert roles["greeter"] == {
        "name": "greeter",
        "scopes": ["list:users"],
        "services": ["greeter"],
    }
    assert "access:services!service=greeter" in roles["user"]["scopes"]
    assert "access:services!service=scratch" in roles["user"]["scopes"]  # pangeohub's kept

    # the configuration is read, never written back: what changed is JupyterHub's section
    # (and KubeSpawner's template paths, which pangeohub's picker adds)
    changed = {k for k in c if dict(c[k]) != dict(before.get(k, {}))}
    assert changed <= {"JupyterHub", *KUBE_SPAWNERS}
    assert dict(c.Greeter) == {"greeting": "bonjour"}

    # its settings file holds its own sections and never the hub's
    written = json.loads((tiny_package / "services" / "greeter.json").read_text())
    assert written == {"Greeter": {"greeting": "bonjour"}}

    # and the service, started with the command the hub registered, reads them
    from tiny_part import GreeterApp

    app = GreeterApp(config=Config())
    try:
        app.initialize(greeter["command"][3:])
        assert app.greeter.greeting == "bonjour"
        assert app.greeter.port == port
    finally:
        GreeterApp.clear_instance()

    pangeohub.configure(c)  # again: the same
    assert services(c)["greeter"] == greeter


def test_an_added_part_is_switched_off_by_its_own_setting(tiny_package):
    c = hub_config()
    c.Greeter.enabled = False
    pangeohub.configure(c)
    assert "greeter" not in services(c)
    assert "scratch" in services(c)


def test_an_added_part_that_cannot_load_stops_the_hub_in_one_line(tmp_path, monkeypatch):
    install_module(
        tmp_path,
        monkeypatch,
        "broken_part",
        "import not_installed_anywhere\n",
        "[pangeohub.parts] broken = broken_part:wire",
    )
    with pytest.raises(ConfigurationError) as refused:
        pangeohub.configure(hub_config())
    message = str(refused.value)
    assert "'broken' (broken_part:wire) cannot be loaded" in message
    assert "uninstall the package" in message
    assert "\n" not in message
