"""Issue 31, spot 8: ``pangeohub.configure(c)`` installs the named-server gate and
pangeohub's changes to JupyterHub; importing pangeohub or making a gate changes nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from traitlets.config import Config

import pangeohub
from pangeohub.assembly import ConfigurationError
from pangeohub.servers import NamedServerGate

PATCHED = """
from jupyterhub import apihandlers, orm
from sqlalchemy import event
from pangeohub.servers import ServerAPIHandler, _check_display_name
handlers = apihandlers.default_handlers + apihandlers.users.default_handlers
print(
    event.contains(orm.Spawner.display_name, "set", _check_display_name),
    any(handler is ServerAPIHandler for _, handler, *_ in handlers),
)
"""


def patched_after(setup: str) -> str:
    """What a fresh Python says about JupyterHub's patches after ``setup`` ran."""
    code = textwrap.dedent(setup) + PATCHED
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.split()[-2:]


def test_import_and_construction_patch_nothing():
    setup = """
    import pangeohub, pangeohub.assembly
    from pangeohub.servers import NamedServerGate
    NamedServerGate()
    """
    assert patched_after(setup) == ["False", "False"]


def test_configure_patches_jupyterhub(tmp_path):
    setup = f"""
    import os
    os.environ["PANGEOHUB_STATE_DIR"] = {str(tmp_path)!r}
    from traitlets.config import Config
    import pangeohub
    pangeohub.configure(Config())
    """
    assert patched_after(setup) == ["True", "True"]


def test_a_gate_without_configure_says_so_in_the_log():
    """A gate set by hand in a configuration that never calls configure(c)."""
    code = textwrap.dedent(
        """
        import logging
        from types import SimpleNamespace
        from pangeohub.servers import NamedServerGate
        lines = []
        log = logging.getLogger("hub")
        log.addHandler(logging.Handler())
        log.handlers[0].emit = lambda record: lines.append(record.getMessage())
        NamedServerGate().policy(SimpleNamespace(settings={}, log=log))
        print(lines)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert "pangeohub.configure(c) did not run" in result.stdout, result.stderr[-2000:]


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))


def test_configure_sets_the_gate(state_dir):
    c = pangeohub.configure(Config())
    assert isinstance(c.JupyterHub.named_server_limit_per_user, NamedServerGate)
    gate = c.JupyterHub.named_server_limit_per_user
    pangeohub.configure(c)
    assert c.JupyterHub.named_server_limit_per_user is gate  # idempotent


def test_configure_keeps_a_gate_the_admin_set(state_dir):
    c = Config()
    c.JupyterHub.named_server_limit_per_user = gate = NamedServerGate()
    assert pangeohub.configure(c).JupyterHub.named_server_limit_per_user is gate


@pytest.mark.parametrize("value", [3, 0, lambda handler: 3], ids=["number", "zero", "callable"])
def test_configure_refuses_another_limit(state_dir, value):
    """Any other value would replace pangeohub's limit and name rule without a word."""
    c = Config()
    c.JupyterHub.named_server_limit_per_user = value
    with pytest.raises(ConfigurationError) as info:
        pangeohub.configure(c)
    message = str(info.value)
    assert "c.JupyterHub.named_server_limit_per_user is" in message
    assert "c.PangeoPolicy.named_server_limit" in message and "\n" not in message
