"""Backup and restore of a hub whose database is PostgreSQL (Debian's server: the
session's, tests/conftest.py): pg_dump, then pg_restore into another hub's
database; every server stopped. The SQLite case, as root with a running hub, is in
tests/operate/test_service.py."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from jupyterhub import orm

from pangeohub.operate.backup import BackupError, backup
from pangeohub.operate.hub import Hub
from pangeohub.operate.restore import restore


def hub_on(tmp_path: Path, name: str, db_url: str) -> Hub:
    config = tmp_path / f"{name}_config.py"
    config.write_text(
        f"c = get_config()\nc.JupyterHub.db_url = {db_url!r}\nc.Isolation.enabled = False\n"
    )
    return Hub(tmp_path / name / "state", config_file=config)


def test_a_postgresql_hub_is_backed_up_and_restored(postgres, tmp_path, monkeypatch):
    monkeypatch.delenv("PANGEOHUB_CONFIG", raising=False)
    # Hub() points $PANGEOHUB_STATE_DIR at its state directory, as the admin's shell does.
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", os.environ.get("PANGEOHUB_STATE_DIR", ""))
    first = hub_on(tmp_path, "first", postgres.create_database("hub_first"))
    db = orm.new_session_factory(first.db_url)()
    grace = orm.User(name="grace")
    db.add(grace)
    db.add(orm.Group(name="pangeo-data:oceans", users=[grace]))
    db.commit()
    spawner = orm.Spawner(user=grace, name="thesis", server=orm.Server(port=12345))
    spawner.state = {"pid": 4242}
    db.add(spawner)
    db.commit()
    db.close()
    (first.state.path / "cookie_secret").write_text("the cookie secret\n")

    manifest = backup(first, tmp_path / "backup", say=lambda line: None)
    assert manifest["database"] == "postgresql"
    assert (tmp_path / "backup" / "database.pgdump").stat().st_size > 0

    second = hub_on(tmp_path, "second", postgres.create_database(f"hub_{uuid.uuid4().hex[:12]}"))
    restore(second, tmp_path / "backup", say=lambda line: None)
    db = orm.new_session_factory(second.db_url)()
    try:
        grace = orm.User.find(db, "grace")
        assert [g.name for g in grace.groups] == ["pangeo-data:oceans"]
        thesis = grace.orm_spawners["thesis"]
        assert thesis.server is None and thesis.state == {}  # stopped on the new machine
    finally:
        db.close()
    assert (second.state.path / "cookie_secret").read_text() == "the cookie secret\n"

    sqlite = Hub(tmp_path / "third" / "state", config_file=tmp_path / "none.py")
    (tmp_path / "none.py").write_text("c = get_config()\nc.Isolation.enabled = False\n")
    with pytest.raises(BackupError, match="backup's database is postgresql"):
        restore(sqlite, tmp_path / "backup", say=lambda line: None)
    assert not (sqlite.state.path / "cookie_secret").exists()  # refused before any change
