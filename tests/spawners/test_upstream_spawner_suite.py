"""JupyterHub's own tests of ``options_from_form``, run on pangeohub's local spawner.

Upstream's ``new_spawner`` makes its spawners from ``SimpleLocalProcessSpawner``; here that
is pangeohub's spawner, so upstream's assertions hold for it: an admin's callable (with or
without ``spawner``) and "simple" give what JupyterHub documents. (Unset, the spawner reads
its own form, so upstream's "default" case, the raw form data, is not pangeohub's; and
"passthrough" stops a pangeohub hub at start-up: tests/spawners/test_spawner_contracts.py.)
"""

import pytest
from jupyterhub.tests import test_spawner as upstream
from jupyterhub.tests.conftest import *  # noqa: F403 (JupyterHub's fixtures: MockHub, api_request)

from pangeohub.spawner import PangeoLocalSpawner


@pytest.fixture(autouse=True)
def pangeohub_spawner(monkeypatch, tmp_path):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(upstream, "SimpleLocalProcessSpawner", PangeoLocalSpawner)


async def test_spawner_options_from_form(db):
    await upstream.test_spawner_options_from_form(db)


async def test_spawner_options_from_form_with_spawner(db):
    await upstream.test_spawner_options_from_form_with_spawner(db)


async def test_predefined_options_from_form_simple(db):
    simple = {"single": "value", "multiple": ["a", "b"], "checkbox": True, "number": "1"}
    await upstream.test_predefined_options_from_form(db, "simple", simple)


async def test_the_spawner_made_is_pangeohubs(db):
    assert isinstance(upstream.new_spawner(db), PangeoLocalSpawner)
