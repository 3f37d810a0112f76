"""Backups of a one-machine hub (``pangeohub-admin backup``).

A backup is a directory (copy it off the machine with ``rsync -aS`` or ``tar --sparse``):

==========================  =======================================================
``manifest.json``           what is inside, the accounts' uids, the hub's version
``database.sqlite``         SQLite's online backup (consistent while the hub runs)
``database.pgdump``         or ``pg_dump --format=custom`` of a PostgreSQL database
``state.tar``               the state directory: secrets, caddy's certificates, ...
``disks/<account>/*.img``   every server's disk image, sparse (holes stay holes)
``shared.tar``              the shared data directory
``scratch.tar``             people's scratch directories (``--scratch``): their files,
                            never the scratch disk images (sparse 10G files a tar
                            would fill with zeros)
==========================  =======================================================

Running servers are not stopped: each one's disk is frozen (``fsfreeze``: writes wait,
reads go on) for the moment its image is copied, so every image is a clean file system.
Everything is read as root from root's own trees (the state directory, the images);
trees people write (scratch, shared data) are read through directory descriptors that
never follow a link (:mod:`.trees`).

:mod:`.restore` puts a backup back.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tarfile
from pathlib import Path

from sqlalchemy.engine import make_url

from .. import __version__
from ..isolation import Isolation
from ..isolation.disks import mounted_at
from ..lab.shared import SharedData
from ..scratch.local import LocalScratchBackend
from .hub import Hub
from .trees import archive_tree

FORMAT = 1
SKIP_STATE = {"jupyterhub.pid", "proxy.pid", "jupyterhub.sqlite", "jupyterhub.sqlite-journal"}


class BackupError(RuntimeError):
    """A backup or restore cannot go on; the message says why and what to do."""


# --- what a hub has, and where -------------------------------------------------------


class Layout:
    """Where one hub keeps each kind of data (from its own configuration)."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.state = hub.state.path
        isolation = hub.part(Isolation)
        self.isolated = isolation.active
        self.disks = Path(isolation.disk_root)
        self.homes = Path(isolation.home_root)
        shared = hub.part(SharedData)
        self.shared = Path(shared.path) if shared.enabled else None
        local = hub.config.ScratchService.get("backend", "local") == "local"
        scratch = hub.part(LocalScratchBackend)
        self.scratch = Path(scratch.root) if local else None
        # people's scratch disk images: their files are in scratch.tar (``--scratch``)
        self.scratch_disks = Path(scratch.disk_root) if local else None
        self.db_url = make_url(hub.db_url)

    def inside_state(self) -> set[str]:
        """Top-level names in the state directory copied on their own, not in state.tar."""
        names = set(SKIP_STATE)
        for path in (self.disks, self.shared, self.scratch, self.scratch_disks):
            if path is not None and path.parent == self.state:
                names.add(path.name)
        return names


# --- backup ------------------------------------------------------------------------


def backup(hub: Hub, destination: Path, scratch: bool = False, say=print) -> dict:
    """Make a backup of ``hub`` in ``destination`` (a new directory); its manifest."""
    umask = os.umask(0o077)  # secrets and people's files: every file root's alone
    try:
        return _backup(hub, destination, scratch, say)
    finally:
        os.umask(umask)


def _backup(hub: Hub, destination: Path, scratch: bool, say) -> dict:
    layout = Layout(hub)
    if destination.exists() and any(destination.iterdir()):
        raise BackupError(f"{destination} is not empty: give a new directory.")
    destination.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(destination, 0o700)
    manifest = {
        "format": FORMAT,
        "pangeohub": __version__,
        "made": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "state_dir": str(layout.state),
        "isolated": layout.isolated,
        "database": _backup_database(layout, destination),
        "admin_config": _backup_admin_config(destination),
    }
    say(f"database: {manifest['database']}")
    with tarfile.open(destination / "state.tar", "w") as tar:
        archive_tree(layout.state, tar, "state", leave_out=frozenset(layout.inside_state()))
    manifest["disks"] = _backup_disks(layout, destination, say)
    manifest["accounts"] = _accounts(manifest["disks"])
    for name, path, include in (
        ("shared", layout.shared, True),
        ("scratch", layout.scratch, scratch),
    ):
        if include and path is not None and path.is_dir():
            with tarfile.open(destination / f"{name}.tar", "w") as tar:
                skipped = archive_tree(path, tar, name, owner_only=name == "scratch")
            manifest[name] = {"from": str(path), "skipped": skipped}
            say(f"{name}: {path}" + (f" ({skipped} entries skipped)" if skipped else ""))
            if name == "scratch":
                manifest["accounts"].update(_owners_of(path))
    (destination / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    say(f"backup complete: {destination}")
    return manifest


def _backup_database(layout: Layout, destination: Path) -> str:
    url = layout.db_url
    if url.get_backend_name() == "sqlite":
        source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
        target = sqlite3.connect(destination / "database.sqlite")
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return "sqlite"
    if url.get_backend_name() == "postgresql":
        run_pg("pg_dump", url, ["--format=custom", f"--file={destination / 'database.pgdump'}"])
        return "postgresql"
    raise BackupError(f"Backing up a {url.get_backend_name()} database is not supported.")


def run_pg(tool: str, url, arguments: list[str]) -> None:
    env = {**os.environ, "PGPASSWORD": url.password or ""}
    command = [
        tool,
        f"--host={url.host or 'localhost'}",
        f"--port={url.port or 5432}",
        f"--username={url.username or 'postgres'}",
        f"--dbname={url.database}",
        *arguments,
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackupError(f"{tool} failed: {result.stderr.strip()[-500:]}")


def _backup_admin_config(destination: Path) -> str | None:
    path = os.environ.get("PANGEOHUB_CONFIG")
    if path and Path(path).is_file():
        shutil.copy2(path, destination / "admin-config.py")
        os.chmod(destination / "admin-config.py", 0o600)
        return path
    return None


def _backup_disks(layout: Layout, destination: Path, say) -> list[dict]:
    disks = []
    if not layout.disks.is_dir():
        return disks
    mounts = _image_mounts()
    for image in sorted(layout.disks.glob("*/*.img")):
        target = destination / "disks" / image.parent.name / image.name
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        mountpoint = mounts.get(str(image))
        with _frozen(mountpoint):
            copy_sparse(image, target)
        record = {
            "account": image.parent.name,
            "image": image.name,
            "size": image.stat().st_size,
            "live": mountpoint is not None,
        }
        disks.append(record)
        say(
            f"disk {record['account']}/{record['image']}"
            + (" (frozen while copied)" if record["live"] else "")
        )
    return disks


def _image_mounts() -> dict[str, str]:
    """Mounted images: backing file -> mount point (from the loop devices)."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        source = fields[fields.index("-") + 2] if "-" in fields else ""
        if not source.startswith("/dev/loop"):
            continue
        backing = Path(f"/sys/block/{Path(source).name}/loop/backing_file")
        with contextlib.suppress(OSError):
            found[backing.read_text().strip()] = fields[4].replace("\\040", " ")
    return found


@contextlib.contextmanager
def _frozen(mountpoint: str | None):
    """Writes to the file system at ``mountpoint`` wait while the block runs."""
    if mountpoint is None or not mounted_at(Path(mountpoint)):
        yield
        return
    frozen = subprocess.run(["fsfreeze", "--freeze", mountpoint], capture_output=True, text=True)
    if frozen.returncode != 0:
        raise BackupError(f"Could not freeze {mountpoint}: {frozen.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["fsfreeze", "--unfreeze", mountpoint], check=True, capture_output=True)


def copy_sparse(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` (0600), only its data: holes stay holes."""
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        size = os.fstat(src).st_size
        offset = 0
        while offset < size:
            try:
                data = os.lseek(src, offset, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole is left
                break
            hole = os.lseek(src, data, os.SEEK_HOLE)
            position = data
            while position < hole:
                copied = os.copy_file_range(src, dst, hole - position, position, position)
                if copied == 0:
                    break
                position += copied
            offset = hole
        os.ftruncate(dst, size)
        os.fsync(dst)
    finally:
        os.close(src)
        os.close(dst)


def _accounts(disks: list[dict]) -> dict[str, list[int]]:
    accounts = {}
    for disk in disks:
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(disk["account"])
            accounts[disk["account"]] = [entry.pw_uid, entry.pw_gid]
    return accounts


def _owners_of(root: Path) -> dict[str, list[int]]:
    owners = {}
    for entry in root.iterdir():
        with contextlib.suppress(OSError, KeyError):
            info = entry.lstat()
            owners[pwd.getpwuid(info.st_uid).pw_name] = [info.st_uid, info.st_gid]
    return owners
