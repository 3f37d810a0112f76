"""A scratch backend from another package: registered by entry point, its settings reach
the service the hub starts (docs/contributing-parts.md)."""

from __future__ import annotations

import json

import pytest
from traitlets.config import Config

import pangeohub
from tests.installed_package import install_module

TINY = '''
from traitlets import Unicode
from traitlets.config import Configurable

from pangeohub.scratch.base import Issued, ScratchBackend


class Greeter(Configurable):
    """Something the backend makes itself, so it names it in its ``classes``."""

    word = Unicode("", config=True)


class TinyScratchBackend(ScratchBackend):
    name = "tiny"
    classes = [Greeter]
    greeting = Unicode("", config=True)

    async def credentials(self, user):
        word = Greeter(parent=self).word
        return Issued(self.url(user), {"greeting": f"{self.greeting}, {word}"})
'''


@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    """A package installed the way pip installs one: its module and its entry point."""
    entry_point = "[pangeohub.scratch_backends] tiny = tiny_scratch:TinyScratchBackend"
    install_module(tmp_path, monkeypatch, "tiny_scratch", TINY, entry_point)
    return tmp_path / "state"


async def test_an_added_backends_settings_reach_the_service(tiny_package):
    from pangeohub.scratch.service import ScratchServiceApp

    c = Config()
    c.PangeoPolicy.profiles = [{"display_name": "Small"}]
    c.ScratchService.backend = "tiny"
    c.ScratchBackend.prefix = "shared-scratch"  # its parent's section, too
    c.TinyScratchBackend.bucket = "tiny-bucket"
    c.TinyScratchBackend.greeting = "hello"
    c.Greeter.word = "world"  # what the backend declares it configures
    pangeohub.configure(c)

    written = json.loads((tiny_package / "services" / "scratch.json").read_text())
    assert written["TinyScratchBackend"] == {"bucket": "tiny-bucket", "greeting": "hello"}
    assert written["Greeter"] == {"word": "world"}

    scratch = {s["name"]: s for s in c.JupyterHub.services}["scratch"]
    config_arg = next(a for a in scratch["command"] if a.startswith("--config="))
    app = ScratchServiceApp(config=Config())
    try:
        app.initialize([config_arg, "--ScratchService.url=http://127.0.0.1:0"])
        assert type(app.store).__name__ == "TinyScratchBackend"
        issued = await app.store.credentials("katherine")
    finally:
        ScratchServiceApp.clear_instance()
    assert issued.credentials == {"greeting": "hello, world"}
    assert issued.url == "file://tiny-bucket/shared-scratch/katherine"
