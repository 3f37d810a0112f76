"""Secrets: generated once, 0600, reused, never shown."""

import os
import stat

import pytest

from pangeohub.state import StateDirectory, state_path, write_atomic, write_private


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


def test_state_path_names_the_directory_without_making_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "elsewhere"))
    assert state_path() == (tmp_path / "elsewhere").resolve()
    assert not (tmp_path / "elsewhere").exists()
    monkeypatch.delenv("PANGEOHUB_STATE_DIR")
    monkeypatch.chdir(tmp_path)
    assert state_path() == (tmp_path / "state").resolve()


def test_the_one_atomic_write_replaces_a_file_whole_with_its_mode(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("old")
    os.chmod(path, 0o666)
    assert write_private(path, "new") == path
    assert path.read_text() == "new" and mode(path) == 0o600
    write_atomic(path, "public", 0o644)
    assert path.read_text() == "public" and mode(path) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]  # no leftover
