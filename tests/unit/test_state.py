"""Secrets: generated once, 0600, reused, never shown."""

import os
import stat

import pytest

from pangeohub.state import StateDirectory


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_secret_generated_once_private_and_reused(tmp_path):
    state = StateDirectory(tmp_path / "state")
    first = state.secret("cookie_secret")
    assert len(first) == 64 and int(first, 16) >= 0
    assert mode(state.path / "cookie_secret") == 0o600
    assert mode(state.path) == 0o700
    assert StateDirectory(tmp_path / "state").secret("cookie_secret") == first
    assert state.secret("proxy_auth_token") != first


def test_empty_secret_file_is_regenerated(tmp_path):
    state = StateDirectory(tmp_path)
    (tmp_path / "crypt_key").write_text("")
    assert len(state.secret("crypt_key")) == 64


def test_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "elsewhere"))
    assert StateDirectory.from_env().path == (tmp_path / "elsewhere").resolve()


def test_sqlite_database_is_private(tmp_path):
    state = StateDirectory(tmp_path)
    assert state.sqlite_url == f"sqlite:///{tmp_path.resolve()}/jupyterhub.sqlite"
    assert mode(tmp_path / "jupyterhub.sqlite") == 0o600


@pytest.mark.parametrize("name", ["", "../escape", "a/b", ".hidden"])
def test_secret_names_stay_inside(tmp_path, name):
    with pytest.raises(ValueError):
        StateDirectory(tmp_path).secret(name)
