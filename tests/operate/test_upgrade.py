"""An upgrade from an earlier pangeohub, as root (opt-in: `make test-upgrade`, about
40 s): a hub run by commit OLD_COMMIT's code (`git archive` of this repository, the
same virtualenv) makes its state, database, accounts and a server's disk; then
`pangeohub-admin upgrade` and the new code's hub: the same people sign in with the
passwords the old hub gave them, which are no longer kept in plain text, and find
their files."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile

import pytest
import requests

from tests.hubprocess import REPO, HubProcess, stop_process_group

from .admin import admin
from .docs_commands import doc_command

OLD_COMMIT = "3f8d978"  # main's tip before the operate work (#30)

pytestmark = [pytest.mark.e2e, pytest.mark.opt_in]


@pytest.fixture(scope="module")
def old_code(tmp_path_factory):
    """The bundle as OLD_COMMIT had it."""
    where = tmp_path_factory.mktemp("old-pangeohub")
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", OLD_COMMIT],
        capture_output=True,
        check=True,
    ).stdout
    archive_path = where / "old.tar"
    archive_path.write_bytes(archive)
    with tarfile.open(archive_path) as tar:
        tar.extractall(where / "code")
    os.chmod(where, 0o755)  # people's accounts import the old code in their servers
    return where / "code"


def test_a_hub_made_by_an_earlier_release_starts_on_the_new_code(old_code, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upgraded")
    old = HubProcess(
        workdir,
        config_file=old_code / "jupyterhub_config.py",
        env={"PYTHONPATH": str(old_code)},  # the old package before the installed one
    )
    old.start()
    try:
        passwords = json.loads((old.state_dir / "local-passwords.json").read_text())
        grace = old.login("grace", passwords["grace"])
        started = old.api(grace, "post", "/users/grace/servers/thesis", json={})
        assert started.status_code in (201, 202), started.text
        old.wait_for_server(grace, "grace", "thesis", timeout=90)
        token = old.api(grace, "post", "/users/grace/tokens", json={}).json()["token"]
        contents = f"{old.url}/user/grace/thesis/api/contents/notes.txt"
        put = requests.put(
            contents,
            json={"type": "file", "format": "text", "content": "written by the old release"},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert put.status_code in (200, 201), put.text
    finally:
        _stop_keep_state(old)

    new = HubProcess(workdir)  # the same directory: the same state and database
    new._started_once = True  # keep what the old hub left (its disk images, accounts)
    moved = {"/var/backups/pangeohub": str(workdir)}
    upgraded = admin(new, *doc_command("upgrade.md", "upgrade", moved))  # as the docs show
    assert upgraded.returncode == 0, upgraded.stderr
    assert "local passwords hashed into the database: ada, grace, katherine" in upgraded.stdout
    assert (workdir / "before-upgrade" / "manifest.json").exists()
    assert not (new.state_dir / "local-passwords.json").exists()
    again = admin(new, "upgrade", "--backup-to", str(workdir / "second"))
    assert again.returncode == 0 and "hashed" not in again.stdout  # idempotent

    new.start()
    try:
        grace = new.login("grace", passwords["grace"])
        ada = new.login("ada", passwords["ada"])
        assert new.api(ada, "get", "/users").status_code == 200  # still an admin
        groups = new.api(grace, "get", "/users/grace").json()["groups"]
        assert groups == ["pangeo-data:climate"]
        started = new.api(grace, "post", "/users/grace/servers/thesis", json={})
        assert started.status_code in (201, 202), started.text
        new.wait_for_server(grace, "grace", "thesis", timeout=90)
        assert new.read_server_file("grace", "thesis", "notes.txt") == "written by the old release"
        for path in new.state_dir.rglob("*"):
            if path.is_file() and path.suffix != ".img":
                content = path.read_bytes()
                assert passwords["grace"].encode() not in content, path
    finally:
        new.stop()


def _stop_keep_state(hub: HubProcess) -> None:
    """Stop the old hub as an admin would before upgrading (servers stop, disks stay)."""
    stop_process_group(hub.proc)
    hub.proc = None
    hub.kill_leftover_servers()
