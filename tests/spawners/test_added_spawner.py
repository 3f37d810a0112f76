"""A spawner from another package, made as docs/contributing-parts.md says (pangeohub's
mixin before an upstream spawner, the profile applied before the admin's
``pre_spawn_hook``, then ``prepare_start()``): registered under JupyterHub's own entry
point group, chosen by name, its own settings and pangeohub's rules reach the server it
starts."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import time

import pytest
from jupyterhub import orm
from jupyterhub.app import JupyterHub
from jupyterhub.objects import Hub
from jupyterhub.tests.conftest import db  # noqa: F401 (JupyterHub's in-memory database)
from jupyterhub.user import User
from jupyterhub.utils import maybe_future
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError
from tests.installed_package import install_module

TINY = '''
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

from pangeohub.spawner.mixin import PangeoSpawnerMixin


class TinySpawner(PangeoSpawnerMixin, LocalProcessSpawner):
    """An upstream spawner with pangeohub's rules and one setting of its own."""

    greeting = Unicode("", help="What every server is told.").tag(config=True)

    @default("options_from_form")
    def _default_options_from_form(self):
        return self.read_form

    def read_form(self, form_data):
        """The spawn form's choice as the policy reads it: {"profile": slug}."""
        return {"profile": (form_data.get("profile") or [None])[0]}

    def run_pre_spawn_hook(self):
        # the one point this spawner applies the profile: before the admin's hook
        profile = self.resolve_profile((self.user_options or {}).get("profile"))
        self.profile = profile
        for name, value in self.profile_traits(profile).items():
            setattr(self, name, value)
        return super().run_pre_spawn_hook()

    async def start(self):
        await self.prepare_start()
        return await super().start()

    def get_env(self):
        env = super().get_env()
        env["TINY_GREETING"] = self.greeting
        return env
'''

# The server's command: writes the environment it was given, then stays up like a server.
WRITE_ENVIRONMENT = """
import json, os, sys, time
with open(sys.argv[1] + ".part", "w") as out:
    json.dump(dict(os.environ), out)
os.rename(sys.argv[1] + ".part", sys.argv[1])
time.sleep(60)
"""


@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    """A package installed the way pip installs one: its module and its entry point."""
    entry_point = "[jupyterhub.spawners] pangeo-tiny = tiny_spawner:TinySpawner"
    install_module(tmp_path, monkeypatch, "tiny_spawner", TINY, entry_point)
    return tmp_path


def hub_config(tmp_path) -> Config:
    c = Config()
    c.JupyterHub.spawner_class = "pangeo-tiny"
    c.PangeoPolicy.profiles = [
        {"display_name": "Small", "slug": "small", "default": True, "mem_limit": 1024**3},
        {"display_name": "Large", "slug": "large", "groups": ["pangeo-data:climate"]},
    ]
    c.Environments.enabled = False
    c.ScratchService.enabled = False
    c.GatewayService.enabled = False
    c.SharedData.path = str(tmp_path / "shared")
    c.TinySpawner.greeting = "hello"
    return c


def tiny_spawner(c, db, account: str):  # noqa: F811 (the fixture, passed on)
    """The spawner JupyterHub makes for ``account``'s default server, by the hub's lookup."""
    spawner_class = JupyterHub(config=c).spawner_class  # JupyterHub's own lookup by name
    assert spawner_class.__name__ == "TinySpawner"
    orm_user = db.query(orm.User).one()
    orm_user.name = account  # LocalProcessSpawner runs a server as its user's account
    db.commit()
    user = User(orm_user, {"config": c, "hub": Hub()})
    return user._new_spawner("", spawner_class=spawner_class, kill_timeout=1, term_timeout=1)


async def test_an_added_spawner_gets_its_settings_and_the_policy(tiny_package, db):  # noqa: F811
    c = hub_config(tiny_package)
    pangeohub.configure(c)
    spawner = tiny_spawner(c, db, getpass.getuser())
    assert spawner.greeting == "hello"
    # pangeohub's rules hold for it: a profile its user's groups do not allow is a 403
    assert [p.slug for p in spawner.allowed_profiles()] == ["small"]
    with pytest.raises(Exception) as refused:
        spawner.run_options_from_form({"profile": ["large"]})
    assert getattr(refused.value, "status_code", None) == 403


async def test_an_added_spawners_server_runs_its_profile_and_settings(tiny_package, db):  # noqa: F811
    written = tiny_package / "environment.json"
    c = hub_config(tiny_package)
    c.TinySpawner.cmd = [sys.executable, "-c", WRITE_ENVIRONMENT, str(written)]
    c.TinySpawner.pre_spawn_hook = lambda spawner: setattr(spawner, "cpu_limit", 0.5)
    c.PangeoSpawnerMixin.environment_hooks = [lambda spawner: {"ADMINS_OWN": "yes"}]
    pangeohub.configure(c)
    spawner = tiny_spawner(c, db, getpass.getuser())
    spawner.user_options = spawner.run_options_from_form({"profile": ["small"]})

    # as JupyterHub's spawn runs it: the pre-spawn hook, then the start
    await maybe_future(spawner.run_pre_spawn_hook())
    try:
        await spawner.start()
        deadline = time.monotonic() + 30
        while not written.exists():
            assert time.monotonic() < deadline, "the server never wrote its environment"
            assert await spawner.poll() is None, "the server ended before writing it"
            await asyncio.sleep(0.05)
        env = json.loads(written.read_text())
    finally:
        await spawner.stop(now=True)

    assert env["TINY_GREETING"] == "hello"  # its own setting
    assert env["PANGEO_PROFILE"] == "small"  # the profile the policy allowed
    assert env["MEM_LIMIT"] == str(1024**3)  # applied on the spawner's own traits
    assert env["CPU_LIMIT"] == "0.5"  # and the admin's pre_spawn_hook, after it, honoured
    assert env["PANGEO_SHARED_DIR"] == str(tiny_package / "shared")  # pangeohub's hooks
    assert env["ADMINS_OWN"] == "yes"  # and the admin's


def test_passthrough_in_an_added_spawners_own_section_stops_the_hub(tiny_package):
    c = Config()
    c.JupyterHub.spawner_class = "pangeo-tiny"  # its entry point name
    c.PangeoPolicy.profiles = [{"display_name": "Small", "slug": "small"}]
    c.TinySpawner.options_from_form = "passthrough"
    with pytest.raises(ConfigurationError) as stopped:
        pangeohub.configure(c)
    assert "c.TinySpawner.options_from_form = 'passthrough'" in str(stopped.value)
