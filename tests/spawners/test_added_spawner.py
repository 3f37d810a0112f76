"""A spawner from another package: registered under JupyterHub's own entry point group,
chosen by name, its own settings and pangeohub's rules reach it (docs/contributing-parts.md)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from jupyterhub.app import JupyterHub
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError
from tests.installed_package import install_module

TINY = '''
from traitlets import Unicode

from pangeohub.spawner.local import PangeoLocalSpawner


class TinySpawner(PangeoLocalSpawner):
    """The local spawner with one setting of its own, as a site's package would add."""

    greeting = Unicode("", config=True)

    def get_env(self):
        env = super().get_env()
        env["TINY_GREETING"] = self.greeting
        return env
'''


@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    """A package installed the way pip installs one: its module and its entry point."""
    entry_point = "[jupyterhub.spawners] pangeo-tiny = tiny_spawner:TinySpawner"
    install_module(tmp_path, monkeypatch, "tiny_spawner", TINY, entry_point)
    return tmp_path


def test_an_added_spawner_is_chosen_by_name_and_gets_its_settings_and_the_policy(tiny_package):
    c = Config()
    c.JupyterHub.spawner_class = "pangeo-tiny"
    c.PangeoPolicy.profiles = [
        {"display_name": "Small", "slug": "small", "default": True},
        {"display_name": "Large", "slug": "large", "groups": ["pangeo-data:climate"]},
    ]
    c.Isolation.enabled = False  # no accounts, disks or cgroups made here
    c.Environments.enabled = False
    c.ScratchService.enabled = False
    c.GatewayService.enabled = False
    c.TinySpawner.greeting = "hello"
    c.TinySpawner.server_root = str(tiny_package / "servers")
    pangeohub.configure(c)

    spawner_class = JupyterHub(config=c).spawner_class  # JupyterHub's own lookup by name
    assert spawner_class.__name__ == "TinySpawner"
    spawner = spawner_class(
        config=c, _deprecated_db_session=None, hub=SimpleNamespace(base_url="/hub/")
    )
    spawner.user = SimpleNamespace(name="ada", groups=[])
    assert spawner.greeting == "hello"
    # pangeohub's rules hold for it: a profile ada's groups do not allow is a 403
    assert [p.slug for p in spawner.allowed_profiles()] == ["small"]
    with pytest.raises(Exception) as refused:
        spawner.run_options_from_form({"profile": ["large"]})
    assert getattr(refused.value, "status_code", None) == 403


def test_passthrough_in_an_added_spawners_own_section_stops_the_hub(tiny_package):
    c = Config()
    c.JupyterHub.spawner_class = "pangeo-tiny"  # its entry point name
    c.PangeoPolicy.profiles = [{"display_name": "Small", "slug": "small"}]
    c.TinySpawner.options_from_form = "passthrough"
    with pytest.raises(ConfigurationError) as stopped:
        pangeohub.configure(c)
    assert "c.TinySpawner.options_from_form = 'passthrough'" in str(stopped.value)
