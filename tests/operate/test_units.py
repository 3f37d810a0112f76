"""The pieces of pangeohub-admin without a hub: trees people write, sparse copies, the
HTTPS settings and their start-up check, the Caddyfile."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import subprocess
import tarfile

import pytest
from traitlets.config import Config

from pangeohub.operate.backup import copy_sparse
from pangeohub.operate.https import HTTPS, check_https
from pangeohub.operate.trees import UnsafeArchive, archive_tree, extract_tree


def archive(root, **kwargs) -> tuple[tarfile.TarFile, int]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        skipped = archive_tree(root, tar, "tree", **kwargs)
    buffer.seek(0)
    return tarfile.open(fileobj=buffer), skipped


def test_links_are_archived_as_links_never_followed(tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key").write_text("hub secret")
    tree = tmp_path / "tree"
    (tree / "grace").mkdir(parents=True)
    (tree / "grace" / "notes.txt").write_text("mine")
    (tree / "grace" / "to-dir").symlink_to(secret)
    (tree / "grace" / "to-file").symlink_to(secret / "key")
    tar, skipped = archive(tree)
    members = {m.name: m for m in tar}
    assert members["tree/grace/to-dir"].issym() and members["tree/grace/to-file"].issym()
    assert "tree/grace/to-dir/key" not in members
    contents = b"".join(tar.extractfile(m).read() for m in members.values() if m.isreg())
    assert b"hub secret" not in contents and skipped == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="owners other than oneself need root")
def test_files_another_account_owns_are_left_out_of_a_persons_tree(tmp_path):
    tree = tmp_path / "tree"
    (tree / "grace").mkdir(parents=True)
    os.chown(tree / "grace", 4242, 4242)
    mine = tree / "grace" / "mine.txt"
    mine.write_text("mine")
    os.chown(mine, 4242, 4242)
    (tree / "grace" / "roots.txt").write_text("root's")  # e.g. a hard link to root's file
    tar, skipped = archive(tree, owner_only=True)
    assert "tree/grace/mine.txt" in tar.getnames()
    assert "tree/grace/roots.txt" not in tar.getnames() and skipped == 1


def test_extracting_never_writes_through_an_archived_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        link = tarfile.TarInfo("tree/a")
        link.type, link.linkname = tarfile.SYMTYPE, str(outside)
        tar.addfile(link)
        evil = tarfile.TarInfo("tree/a/evil")
        evil.size = 4
        evil.mode = 0o4755  # set-uid
        tar.addfile(evil, io.BytesIO(b"evil"))
    buffer.seek(0)
    with pytest.raises(NotADirectoryError), tarfile.open(fileobj=buffer) as tar:
        extract_tree(tar, "tree", tmp_path / "restored")
    assert list(outside.iterdir()) == []


def test_extracting_refuses_dot_dot_and_drops_set_id_bits(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tool = tarfile.TarInfo("tree/tool")
        tool.size, tool.mode = 2, 0o4755
        tar.addfile(tool, io.BytesIO(b"#!"))
    buffer.seek(0)
    with tarfile.open(fileobj=buffer) as tar:
        extract_tree(tar, "tree", tmp_path / "restored")
    assert stat.S_IMODE((tmp_path / "restored" / "tool").stat().st_mode) == 0o755
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        up = tarfile.TarInfo("tree/../up")
        tar.addfile(up, io.BytesIO(b""))
    buffer.seek(0)
    with pytest.raises(UnsafeArchive), tarfile.open(fileobj=buffer) as tar:
        extract_tree(tar, "tree", tmp_path / "again")
    assert not (tmp_path / "up").exists()


def test_a_sparse_copy_keeps_holes_and_data(tmp_path):
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(1 << 30)
        f.seek(5 << 20)
        f.write(b"data in the middle")
        f.seek((1 << 30) - 4)
        f.write(b"tail")
    copy = tmp_path / "copy.img"
    copy_sparse(image, copy)
    assert copy.stat().st_size == 1 << 30
    assert copy.stat().st_blocks * 512 < 1 << 20
    with open(copy, "rb") as f:
        f.seek(5 << 20)
        assert f.read(18) == b"data in the middle"
        f.seek((1 << 30) - 4)
        assert f.read() == b"tail"
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600


def https(**settings) -> Config:
    c = Config()
    for name, value in settings.items():
        section, key = name.split("__")
        c[section][key] = value
    return c


@pytest.mark.parametrize(
    "settings, refusal",
    [
        ({"HTTPS__domain": "https://hub.example.org/"}, "not a domain name"),
        ({"HTTPS__domain": "hub.example.org", "HTTPS__key": "/k.pem"}, "go together"),
        ({"HTTPS__domain": "hub.example.org", "JupyterHub__ip": "0.0.0.0"}, "loopback"),
        (
            {"HTTPS__domain": "hub.example.org", "JupyterHub__spawner_class": "pangeo-kubernetes"},
            "proxy.https",
        ),
    ],
)
def test_settings_that_cannot_work_stop_the_hub_with_the_reason(settings, refusal):
    with pytest.raises(ValueError, match=refusal):
        check_https(https(**settings))


def test_no_domain_no_https():
    check_https(Config())
    assert not HTTPS(config=Config()).enabled


def test_the_caddyfile_for_acme_and_for_the_admins_certificate():
    acme = HTTPS(domain="hub.example.org", email="admin@example.org", storage="/s")
    text = acme.caddyfile("127.0.0.1:8000")
    assert "hub.example.org {\n\treverse_proxy 127.0.0.1:8000\n}" in text
    assert "email admin@example.org" in text and "admin off" in text and "tls " not in text
    assert "acme_ca" not in text  # caddy's default authority: Let's Encrypt
    own = HTTPS(domain="hub.example.org", certificate="/c.pem", key="/k.pem", storage="/s")
    assert "\ttls /c.pem /k.pem\n" in own.caddyfile("127.0.0.1:8000")
    with pytest.raises(ValueError):
        HTTPS(domain="hub.example.org", email="a b", storage="/s").caddyfile("x")


def test_backup_and_restore_refuse_what_would_lose_something(tmp_path, monkeypatch):
    """A non-empty destination, a hub that already has a database, a running hub: each is
    a one-line refusal (exit 1) and nothing changes."""
    from tests.hubprocess import VENV_BIN

    monkeypatch.setenv("PANGEOHUB_STATE_DIR", os.environ.get("PANGEOHUB_STATE_DIR", ""))
    config = tmp_path / "config.py"
    config.write_text("c = get_config()\nc.Isolation.enabled = False\n")

    def admin(state: str, *args: str):
        return subprocess.run(
            [str(VENV_BIN / "pangeohub-admin"), "--state-dir", str(tmp_path / state),
             "--hub-config", str(config), *args],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    (tmp_path / "first").mkdir()
    with sqlite3.connect(tmp_path / "first" / "jupyterhub.sqlite") as db:
        db.execute("create table t (x)")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("keep")
    refused = admin("first", "backup", str(tmp_path / "full"))
    assert refused.returncode == 1 and "is not empty" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert admin("first", "backup", str(tmp_path / "b")).returncode == 0
    used = admin("first", "restore", str(tmp_path / "b"))
    assert used.returncode == 1 and "already has a hub database" in used.stderr
    (tmp_path / "second").mkdir()
    (tmp_path / "second" / "jupyterhub.pid").write_text(str(os.getpid()))  # "running"
    running = admin("second", "restore", str(tmp_path / "b"))
    assert running.returncode == 1 and "stop it before restoring" in running.stderr
    assert not (tmp_path / "second" / "cookie_secret").exists()


def test_without_a_state_directory_the_command_asks_which_hub(tmp_path, monkeypatch):
    from tests.hubprocess import VENV_BIN

    env = {k: v for k, v in os.environ.items() if k != "PANGEOHUB_STATE_DIR"}
    result = subprocess.run(
        [str(VENV_BIN / "pangeohub-admin"), "backup", str(tmp_path / "b")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "which hub?" in result.stderr
    assert not (tmp_path / "state").exists() and not (tmp_path / "b").exists()
