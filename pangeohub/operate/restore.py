"""Restore a backup (``pangeohub-admin restore``) into a hub's state directory that has
no database yet (a fresh machine, or a second state directory): the same users, groups,
servers (all stopped), files and secrets. People's accounts get the uids they had, since
the files inside their disk images carry them.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tarfile
from pathlib import Path

from ..isolation.accounts import AccountIdConflict, AccountRegistry, ensure_account
from .backup import FORMAT, BackupError, Layout, copy_sparse, run_pg
from .hub import Hub
from .trees import extract_tree


def restore(hub: Hub, source: Path, say=print) -> dict:
    """Restore the backup in ``source`` into ``hub`` (whose database must be empty)."""
    manifest = json.loads((source / "manifest.json").read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{source} is a backup of format {manifest.get('format')}, not {FORMAT}.")
    if hub.pid is not None:
        raise BackupError(f"The hub is running (pid {hub.pid}): stop it before restoring.")
    layout = Layout(hub)
    _refuse_a_used_hub(layout)
    if manifest["database"] != layout.db_url.get_backend_name():
        raise BackupError(
            f"The backup's database is {manifest['database']} but this hub's is "
            f"{layout.db_url.get_backend_name()}: set c.JupyterHub.db_url to the same kind."
        )
    _ensure_accounts(manifest.get("accounts", {}), layout)
    restored_apart = layout.inside_state()  # (older backups had scratch disks in state.tar)
    with tarfile.open(source / "state.tar") as tar:
        for member in tar:
            name = member.name.removeprefix("state/")
            if member.name.startswith("state/") and name.split("/")[0] not in restored_apart:
                member.mode &= 0o1777  # no set-id bits
                member.name = name  # state/<name> -> <state dir>/<name>
                tar.extract(member, layout.state, set_attrs=True)
    _check_recorded_ids(manifest.get("accounts", {}), layout, say)
    _restore_database(layout, source, manifest["database"])
    for disk in manifest.get("disks", []):
        directory = layout.disks / disk["account"]
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        copy_sparse(source / "disks" / disk["account"] / disk["image"], directory / disk["image"])
        say(f"disk {disk['account']}/{disk['image']}")
    for name, path in (("shared", layout.shared), ("scratch", layout.scratch)):
        if (source / f"{name}.tar").exists() and path is not None:
            _into_new_directory(path)
            with tarfile.open(source / f"{name}.tar") as tar:
                extract_tree(tar, name, path)
            say(f"{name}: {path}")
    say(f"restored into {layout.state}; every server is stopped, start the hub")
    return manifest


def _refuse_a_used_hub(layout: Layout) -> None:
    url = layout.db_url
    if url.get_backend_name() == "sqlite":
        path = Path(url.database)
        if path.exists() and path.stat().st_size > 0:
            raise BackupError(
                f"{layout.state} already has a hub database ({path}): restore into a new "
                "state directory (or move this one away first)."
            )


def _ensure_accounts(accounts: dict[str, list[int]], layout: Layout) -> None:
    """Every account of the backup, with the uid and gid the files in its disks carry
    (made as the hub makes a removed account again: :func:`ensure_account`)."""
    if not layout.isolated:
        return
    for name, (uid, gid) in sorted(accounts.items()):
        try:
            ensure_account(name, str(layout.homes / name), (uid, gid))
        except AccountIdConflict as error:
            raise BackupError(str(error)) from None


def _check_recorded_ids(accounts: dict[str, list[int]], layout: Layout, say) -> None:
    """Say which account the restored record (``accounts.db``) gives other ids than the
    backup's manifest: the hub refuses its servers until an admin settles which ids its
    files carry."""
    if not layout.isolated or not (layout.state / "accounts.db").exists():
        return
    registry = AccountRegistry(layout.state / "accounts.db")  # records ids it lacks
    for name, (uid, gid) in sorted(accounts.items()):
        recorded = registry.recorded_ids(name)
        if recorded is not None and recorded != (uid, gid):
            say(
                f"warning: {name} has uid {uid} and gid {gid} in the backup's manifest but "
                f"{recorded[0]} and {recorded[1]} in accounts.db: its servers will be "
                "refused until its ids and its files' agree (docs/isolation.md)"
            )


def _restore_database(layout: Layout, source: Path, kind: str) -> None:
    url = layout.db_url
    if kind == "sqlite":
        target = Path(url.database)
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        source_db = sqlite3.connect(source / "database.sqlite")
        target_db = sqlite3.connect(target)
        try:
            source_db.backup(target_db)
        finally:
            source_db.close()
            target_db.close()
        os.chmod(target, 0o600)
    else:
        run_pg(
            "pg_restore",
            url,
            ["--clean", "--if-exists", "--no-owner", str(source / "database.pgdump")],
        )
    _every_server_stopped(str(url.render_as_string(hide_password=False)))


def _every_server_stopped(db_url: str) -> None:
    """Nothing runs on a restored machine: forget every server's process and address."""
    from jupyterhub import orm

    db = orm.new_session_factory(db_url)()
    try:
        for spawner in db.query(orm.Spawner):
            server = spawner.server
            spawner.server = None
            spawner.state = {}
            if server is not None:
                db.delete(server)
        db.commit()
    finally:
        db.close()


def _into_new_directory(path: Path) -> None:
    """``path`` must not exist (an empty directory is removed) for extract_tree."""
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        path.rmdir()
    if path.exists() or path.is_symlink():
        raise BackupError(f"{path} already has files: restore into a new hub.")
    path.parent.mkdir(mode=0o711, parents=True, exist_ok=True)
