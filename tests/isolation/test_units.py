"""The isolation parts on this machine: accounts, cgroups, disks, safe deletion.

Most need root (accounts, cgroups, loop mounts); they are skipped, saying so, otherwise.
Each cleans up what it makes, and tolerates a killed earlier run's leftovers.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pwd
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from pangeohub.isolation import Isolation, accounts, blocked_for_others, check_servers_can_run
from pangeohub.isolation.accounts import (
    AccountCollision,
    AccountIdConflict,
    AccountRegistry,
    account_name,
    ensure_account,
    lookup,
    remove_account,
)
from pangeohub.isolation.cgroups import ServerCgroup, cgroup_version, read_oom_kills
from pangeohub.isolation.disks import ServerDisk, loop_devices_usable, mounted_at
from pangeohub.isolation.sandbox import (
    Sandbox,
    hub_software,
    sandbox_problem,
    signal_sandbox,
)
from pangeohub.spawner.local_homes import remove_tree

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="accounts, cgroups and mounts need root")


def test_account_names_are_safe_and_distinct():
    assert account_name("jupyter-", "grace") == "jupyter-grace"
    names = {
        account_name("jupyter-", u)
        for u in ["Grace", "grace@example.org", "grace.example", "ünïcode", "x" * 60, "x" * 61, "-"]
    }
    assert len(names) == 7
    for name in names:
        assert len(name) <= 32 and name.startswith("jupyter-")
        assert all(ch.isascii() and (ch.isalnum() or ch == "-") for ch in name), name
        assert name == name.lower() and not name.endswith("-")


@root_only
def test_account_is_created_once_and_reused():
    name = f"jupyter-t{uuid.uuid4().hex[:10]}"
    try:
        first = ensure_account(name, f"/srv/pangeohub/test/{name}")
        again = ensure_account(name, "/elsewhere")
        assert again.pw_uid == first.pw_uid and first.pw_uid != 0
        assert first.pw_gid != 0 and first.pw_shell == "/bin/bash"
        assert not Path(first.pw_dir).exists()  # no home made outside the server's disk
    finally:
        assert remove_account(name)
    assert lookup(name) is None


@root_only
@pytest.mark.skipif(cgroup_version() is None, reason="no cgroup with memory and cpu here")
def test_cgroup_limits_hold_and_go_away():
    relative = f"pangeohub/unit-{uuid.uuid4().hex[:8]}/jupyter-x/_default"
    group = ServerCgroup(relative, cgroup_version())
    try:
        group.create(256 * 2**20, 0.5, mem_guarantee=128 * 2**20, cpu_guarantee=0.25)
        group.create(256 * 2**20, 0.5)  # idempotent
        code = "import sys; b = bytearray(512 * 2**20); print('survived')"
        child = subprocess.Popen(
            [sys.executable, "-c", code], preexec_fn=group.join, stdout=subprocess.PIPE
        )
        out, _ = child.communicate(timeout=60)
        assert child.returncode == -9 and b"survived" not in out  # the kernel's OOM killer
        assert group.oom_kills() >= 1
        sleeper = subprocess.Popen(["sleep", "60"], preexec_fn=group.join)
        assert sleeper.pid in group.pids()
        group.remove()
        assert sleeper.wait(10) == -9
        assert not any(d.exists() for d in group.directories)
    finally:
        group.remove()
        for d in group.directories:
            for parent in list(d.parents)[:2]:
                if parent.name.startswith("unit-") or parent.name == "jupyter-x":
                    with __import__("contextlib").suppress(OSError):
                        parent.rmdir()


def test_oom_counter_is_read_from_both_formats(tmp_path):
    v1 = tmp_path / "memory.oom_control"
    v1.write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    v2 = tmp_path / "memory.events"
    v2.write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    assert read_oom_kills(v1) == 3 and read_oom_kills(v2) == 2
    assert read_oom_kills(tmp_path / "missing") == 0


@root_only
@pytest.mark.skipif(loop_devices_usable() is not None, reason=f"{loop_devices_usable()}")
def test_disk_has_a_hard_size_and_survives_remounting(tmp_path):
    mountpoint = Path(f"/srv/pangeohub/unit-{uuid.uuid4().hex[:8]}/homes/jupyter-x/_default")
    disk = ServerDisk(tmp_path / "x.img", mountpoint, 64 * 2**20, 12345, 12345)
    try:
        started = time.monotonic()
        assert disk.ensure() is True
        made_in = time.monotonic() - started
        assert disk.ensure() is False and disk.mounted  # idempotent
        assert mounted_at(mountpoint)
        assert (tmp_path / "x.img").stat().st_blocks * 512 < 32 * 2**20  # sparse
        info = mountpoint.stat()
        assert (info.st_uid, info.st_mode & 0o777) == (12345, 0o700)
        parent = mountpoint.parent.stat()
        assert (parent.st_uid, parent.st_mode & 0o777) == (0, 0o711)
        written = 0
        with pytest.raises(OSError) as error, open(mountpoint / "big", "wb") as f:
            while written < 128 * 2**20:
                f.write(b"\0" * 2**20)
                f.flush()
                os.fsync(f.fileno())
                written += 2**20
        assert error.value.errno == errno.ENOSPC
        assert 48 * 2**20 <= written <= 64 * 2**20
        (mountpoint / "big").unlink()
        (mountpoint / "kept").write_text("hello")
        disk.unmount()
        disk.unmount()  # idempotent
        assert not disk.mounted and not (mountpoint / "kept").exists()
        disk.mount()
        assert (mountpoint / "kept").read_text() == "hello"
        disk.delete()
        assert not (tmp_path / "x.img").exists() and not mountpoint.exists()
        assert made_in < 10
    finally:
        disk.delete()
        import shutil

        shutil.rmtree(mountpoint.parents[2], ignore_errors=True)


def test_deleting_a_server_directory_never_follows_a_link(tmp_path):
    root = tmp_path / "servers"
    (root / "katherine" / "work").mkdir(parents=True)
    (root / "katherine" / "work" / "thesis.txt").write_text("years of work")
    (root / "grace").mkdir()
    (root / "grace" / "one").symlink_to(root / "katherine" / "work")
    log = logging.getLogger("test")
    remove_tree(root, ["grace", "one"], log)
    assert not (root / "grace" / "one").exists()
    assert (root / "katherine" / "work" / "thesis.txt").read_text() == "years of work"
    # A user directory replaced by a link: nothing below it is deleted.
    (root / "mallory").symlink_to(root / "katherine")
    remove_tree(root, ["mallory", "work"], log)
    assert (root / "katherine" / "work" / "thesis.txt").exists()
    # A link inside a server's directory is removed as a link.
    (root / "grace" / "two").mkdir()
    (root / "grace" / "two" / "link").symlink_to(root / "katherine" / "work")
    remove_tree(root, ["grace", "two"], log)
    assert not (root / "grace" / "two").exists()
    assert (root / "katherine" / "work" / "thesis.txt").exists()


def test_a_plain_name_is_never_another_names_hashed_account():
    """Issue 28, finding 5: "ada.x" is hashed to jupyter-ada-x-<hash>; the plain name
    "ada-x-<hash>" must not land on the same account."""
    hashed = account_name("jupyter-", "ada.x")
    assert hashed.startswith("jupyter-ada-x-")
    for plain in (hashed.removeprefix("jupyter-"), hashed.removeprefix("jupyter-ada-x-")):
        assert account_name("jupyter-", plain) != hashed


def test_the_registry_gives_one_account_per_name_and_refuses_a_second(tmp_path):
    registry = AccountRegistry(tmp_path / "accounts.db")
    assert registry.claim("grace", "jupyter-grace") == "jupyter-grace"
    assert registry.claim("grace", "jupyter-other") == "jupyter-grace"  # recorded wins
    with pytest.raises(AccountCollision, match="already belongs to another person"):
        AccountRegistry(tmp_path / "accounts.db").claim("mallory", "jupyter-grace")
    assert registry.owner("jupyter-grace") == "grace"
    assert stat.S_IMODE((tmp_path / "accounts.db").stat().st_mode) == 0o600


class FakeUsers:
    """The user and group databases as ``accounts`` sees them, and the commands it runs."""

    def __init__(self, monkeypatch):
        self.users: dict[str, tuple[int, int]] = {}
        self.groups: dict[str, int] = {}
        self.commands: list[list[str]] = []
        for name, fake in [
            ("lookup", self.lookup),
            ("_run", self.run),
            ("_account_with_uid", lambda uid: self._holder(self.users, uid, lambda ids: ids[0])),
            ("_group_name", lambda gid: self._holder(self.groups, gid, lambda g: g)),
            ("_group_id", self.groups.get),
        ]:
            monkeypatch.setattr(accounts, name, fake)

    @staticmethod
    def _holder(table, number, of):
        return next((name for name, value in table.items() if of(value) == number), None)

    def lookup(self, name):
        if name not in self.users:
            return None
        uid, gid = self.users[name]
        return pwd.struct_passwd((name, "x", uid, gid, "pangeohub user", "/h", "/bin/bash"))

    def run(self, command):
        self.commands.append(command)
        name = command[-1]
        if command[0] == "groupadd":
            self.groups[name] = int(command[command.index("--gid") + 1])
        elif "--uid" in command:
            self.users[name] = (int(command[command.index("--uid") + 1]), self.groups[name])
        else:
            uid = max([1000, *(u for u, _ in self.users.values())]) + 1
            self.users[name], self.groups[name] = (uid, uid), uid


@pytest.fixture
def fake_users(monkeypatch):
    return FakeUsers(monkeypatch)


def test_an_earlier_registry_gets_the_ids_of_its_accounts_that_exist(tmp_path, fake_users):
    fake_users.users["jupyter-grace"] = (1234, 1235)
    with contextlib.closing(sqlite3.connect(tmp_path / "accounts.db")) as db, db:
        db.execute(
            "CREATE TABLE accounts ("
            "hub_name TEXT PRIMARY KEY, account TEXT NOT NULL UNIQUE, made REAL NOT NULL)"
        )
        db.execute("INSERT INTO accounts VALUES ('grace', 'jupyter-grace', 1.0)")
        db.execute("INSERT INTO accounts VALUES ('ada', 'jupyter-ada', 2.0)")
    registry = AccountRegistry(tmp_path / "accounts.db")
    assert registry.recorded_ids("jupyter-grace") == (1234, 1235)
    assert registry.recorded_ids("jupyter-ada") is None  # removed before: nothing to record
    assert registry.claim("grace", "jupyter-other") == "jupyter-grace"  # the claims kept
    fake_users.users["jupyter-grace"] = (4321, 4321)  # ids already recorded are kept
    assert AccountRegistry(tmp_path / "accounts.db").recorded_ids("jupyter-grace") == (1234, 1235)


def test_an_account_removed_comes_back_with_its_recorded_ids(tmp_path, fake_users):
    registry = AccountRegistry(tmp_path / "accounts.db")
    account = registry.claim("grace", "jupyter-grace")
    made = registry.ensure(account, "/h/jupyter-grace")
    assert "--user-group" in fake_users.commands[-1]
    ids = (made.pw_uid, made.pw_gid)
    assert AccountRegistry(tmp_path / "accounts.db").recorded_ids(account) == ids
    del fake_users.users[account], fake_users.groups[account]  # userdel
    fake_users.users["jupyter-ada"] = (ids[0] + 1, ids[0] + 1)  # useradd's next uid: taken
    again = AccountRegistry(tmp_path / "accounts.db").ensure(account, "/h/jupyter-grace")
    assert (again.pw_uid, again.pw_gid) == ids
    assert fake_users.commands[-2][:3] == ["groupadd", "--gid", str(ids[1])]
    useradd = fake_users.commands[-1]
    assert useradd[useradd.index("--uid") :][:4] == ["--uid", str(ids[0]), "--gid", str(ids[1])]
    del fake_users.users[account]  # userdel that left the group: it is reused
    assert registry.ensure(account, "/h/jupyter-grace") == again
    assert fake_users.commands[-1][0] == "useradd"


@pytest.mark.parametrize(
    "change, refusal",
    [
        ("uid", "another account has that uid now.*getent passwd 1001"),
        ("gid", "another group has that gid now.*getent group 1001"),
        ("group", "its group jupyter-grace has gid 2000 now.*groupmod --gid 1001"),
        ("renumbered", "has uid 2000 and gid 2000 on this machine.*carry uid 1001 and gid 1001"),
    ],
)
def test_an_account_whose_ids_are_taken_is_refused_saying_what_to_do(
    tmp_path, fake_users, change, refusal
):
    registry = AccountRegistry(tmp_path / "accounts.db")
    registry.ensure(registry.claim("grace", "jupyter-grace"), "/h")
    assert registry.recorded_ids("jupyter-grace") == (1001, 1001)
    del fake_users.users["jupyter-grace"], fake_users.groups["jupyter-grace"]
    if change == "uid":
        fake_users.users["jupyter-mallory"] = (1001, 3000)
    elif change == "gid":
        fake_users.groups["pangeo-curators"] = 1001
    elif change == "group":
        fake_users.groups["jupyter-grace"] = 2000
    else:
        fake_users.users["jupyter-grace"] = (2000, 2000)  # useradd by hand, a new uid
    made = len(fake_users.commands)
    with pytest.raises(AccountIdConflict, match=refusal) as error:
        registry.ensure("jupyter-grace", "/h")
    assert isinstance(error.value, AccountCollision)  # refused as a collision is
    assert "A hub admin must" in str(error.value) and "Traceback" not in str(error.value)
    assert len(fake_users.commands) == made  # nothing made or changed


def test_a_restore_makes_accounts_as_the_hub_does_and_says_where_the_record_differs(
    tmp_path, fake_users
):
    from types import SimpleNamespace

    from pangeohub.operate.backup import BackupError
    from pangeohub.operate.restore import _check_recorded_ids, _ensure_accounts

    layout = SimpleNamespace(isolated=True, homes=tmp_path / "homes", state=tmp_path)
    _ensure_accounts({"jupyter-grace": [1500, 1501]}, layout)
    assert fake_users.users["jupyter-grace"] == (1500, 1501)
    assert fake_users.commands[0][:3] == ["groupadd", "--gid", "1501"]
    registry = AccountRegistry(tmp_path / "accounts.db")  # as restored from the backup
    registry.claim("grace", "jupyter-grace")
    registry.claim("ada", "jupyter-ada")
    fake_users.users["jupyter-ada"] = (1600, 1600)
    registry.ensure("jupyter-ada", "/h")
    said = []
    manifest = {"jupyter-grace": [1500, 1501], "jupyter-ada": [1700, 1700]}
    _check_recorded_ids(manifest, layout, said.append)
    assert len(said) == 1 and "jupyter-ada has uid 1700" in said[0] and "1600" in said[0]
    fake_users.users["jupyter-mallory"] = (1800, 1800)
    with pytest.raises(BackupError, match="another account has that uid now"):
        _ensure_accounts({"jupyter-katherine": [1800, 1801]}, layout)
    with pytest.raises(BackupError, match="has uid 1500 and gid 1501 on this machine"):
        _ensure_accounts({"jupyter-grace": [1500, 1500]}, layout)


@root_only
def test_a_removed_account_comes_back_with_its_uid_or_is_refused(tmp_path, monkeypatch):
    """An account removed while its disks are kept (userdel, a test session's clean-up)
    is made again with the uid its files carry; where another account has that uid now,
    it is refused saying what an admin must do."""
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir(mode=0o700)
    username = f"uidtest-{uuid.uuid4().hex[:10]}"
    squatter = f"jupyter-uidtest-{uuid.uuid4().hex[:10]}"
    account = Isolation().account(username)
    assert account == f"jupyter-{username}"
    try:
        made = Isolation().ensure_account(account)
        ids = (made.pw_uid, made.pw_gid)
        subprocess.run(["userdel", account], check=True, capture_output=True)
        assert lookup(account) is None
        monkeypatch.setattr(AccountRegistry, "_open", {})  # as the hub after a restart
        again = Isolation().ensure_account(account)
        assert (again.pw_uid, again.pw_gid) == ids
        subprocess.run(["userdel", account], check=True, capture_output=True)
        subprocess.run(
            ["useradd", "--no-create-home", "--uid", str(ids[0]),
             "--comment", "pangeohub user", squatter],
            check=True, capture_output=True,
        )  # fmt: skip
        monkeypatch.setattr(AccountRegistry, "_open", {})
        with pytest.raises(AccountIdConflict, match=f"must have uid {ids[0]}, which the files"):
            Isolation().ensure_account(account)
        assert lookup(account) is None and lookup(squatter).pw_uid == ids[0]
    finally:
        for name in (account, squatter):
            remove_account(name)
            subprocess.run(["groupdel", name], check=False, capture_output=True)
    assert lookup(account) is None and lookup(squatter) is None


async def test_a_start_whose_account_cannot_have_its_ids_is_refused_with_the_message(
    tmp_path, monkeypatch
):
    from types import SimpleNamespace

    from tornado import web
    from traitlets.config import Config

    from pangeohub.spawner.local import PangeoLocalSpawner

    message = "The system account jupyter-grace must have uid 1001 … A hub admin must …"

    def prepare_home(self):
        raise AccountIdConflict(message)

    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setattr(PangeoLocalSpawner, "prepare_home", prepare_home)
    c = Config()
    c.Isolation.enabled = False  # no account made here: prepare_home stands in for it
    c.Environments.enabled = False
    c.PangeoLocalSpawner.server_root = str(tmp_path / "servers")
    spawner = PangeoLocalSpawner(
        config=c, _deprecated_db_session=None, hub=SimpleNamespace(base_url="/hub/")
    )
    spawner.user = SimpleNamespace(name="grace", groups=[])
    spawner.user_options = {}
    with pytest.raises(web.HTTPError) as refused:
        await spawner.start()
    assert refused.value.status_code == 409 and refused.value.jupyterhub_message == message


sandboxes = pytest.mark.skipif(sandbox_problem() is not None, reason=f"{sandbox_problem()}")


@pytest.fixture
def outside_tmp():
    """A directory of the test's outside /tmp (each sandbox has its own /tmp)."""
    import shutil

    path = Path("/srv/pangeohub") / f"test-sandbox-{uuid.uuid4().hex[:8]}"
    path.mkdir(mode=0o755, parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@sandboxes
def test_a_sandbox_has_its_own_tmp_and_processes_and_no_privileges(outside_tmp):
    hidden = outside_tmp / "hidden"
    (hidden / "mine").mkdir(parents=True)
    (hidden / "theirs").mkdir()
    hidden.chmod(0o711)
    nobody = Sandbox(
        65534, 65534, tmp_size=8 * 2**20, hide=(str(hidden),), keep=(str(hidden / "mine"),)
    )
    script = f"""
import json, os
out = {{"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
       "tmp": os.listdir("/tmp") + os.listdir("/var/tmp") + os.listdir("/dev/shm"),
       "seen": [n for n in ("mine", "theirs") if os.path.isdir(os.path.join({str(hidden)!r}, n))],
       "caps": open("/proc/self/status").read().split("CapEff:")[1].split()[0]}}
try:
    with open("/tmp/fill", "wb") as f:
        f.write(bytes(9 * 2**20))
    out["fill"] = "fit"
except OSError as error:
    out["fill"] = error.strerror
print(json.dumps(out))
"""
    done = subprocess.run(
        nobody.wrap([sys.executable, "-c", script]), capture_output=True, text=True, check=True
    )
    import json

    seen = json.loads(done.stdout)
    assert seen["uid"] == 65534 and int(seen["caps"], 16) == 0
    # nothing in /tmp but the hub's own software, where the checkout lies there
    software = {Path(p).relative_to("/tmp").parts[0] for p in hub_software() if p[:5] == "/tmp/"}
    assert set(seen["tmp"]) == software and seen["fill"] == "No space left on device"
    assert seen["pids"][0] == 1 and len(seen["pids"]) <= 3  # bwrap's init, python
    assert seen["seen"] == ["mine"]


@sandboxes
def test_a_sandboxed_command_gets_the_signal_not_its_sandbox():
    script = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *a: (print('stopped', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    proc = subprocess.Popen(
        Sandbox(65534, 65534).wrap([sys.executable, "-c", script]), stdout=subprocess.PIPE
    )
    assert proc.stdout.readline().strip() == b"ready"
    assert signal_sandbox(proc.pid, 2)
    assert proc.wait(30) == 0  # it stopped by itself, after its own handler ran
    assert proc.stdout.read().strip() == b"stopped"


def test_a_python_closed_to_other_accounts_is_refused(tmp_path):
    closed = tmp_path / "closed"
    (closed / "bin").mkdir(parents=True)
    python = closed / "bin" / "python"
    python.write_text("")
    python.chmod(0o755)
    closed.chmod(0o700)
    blocked = blocked_for_others(python)
    assert blocked is not None and closed.is_relative_to(blocked)
    with pytest.raises(ValueError, match="cannot reach"):
        check_servers_can_run(str(python))


def test_the_hub_says_when_people_are_not_isolated():
    line = Isolation(enabled=False).summary()
    assert "NOT isolated" in line and "\n" not in line
    if os.geteuid() == 0:
        assert "own account" in Isolation().summary()


@root_only
def test_a_clusters_files_are_roots_and_open_only_to_the_persons_group(tmp_path):
    """Issue 28, finding 2: nothing in a cluster's directory is the person's to change
    (root makes files there), and no other account may enter it."""
    from types import SimpleNamespace

    from pangeohub.isolation.gateway import PangeoIsolatedLocalBackend

    backend = PangeoIsolatedLocalBackend(clusters_directory=str(tmp_path))
    username = f"t{uuid.uuid4().hex[:10]}"
    account = backend.account(username)
    try:
        cluster = SimpleNamespace(name="c1", username=username, tls_cert=b"c", tls_key=b"k")
        workdir = Path(backend.setup_working_directory(cluster))
        assert workdir == tmp_path / account / "c1"
        gid = lookup(account).pw_gid
        for path in [workdir.parent, workdir, workdir / ".certs", workdir / "logs"]:
            info = path.lstat()
            assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, 0o710)
        for path in workdir.glob(".certs/*"):
            info = path.lstat()
            assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, gid, 0o440)
        assert len(list(workdir.glob(".certs/*"))) == 2
        assert Path("/").stat().st_uid == 0 and tmp_path.stat().st_uid == 0
        # a second cluster's directory where a link was planted: refused, nothing followed
        (tmp_path / account / "c2").symlink_to(tmp_path)
        with pytest.raises(OSError):
            backend.setup_working_directory(SimpleNamespace(**{**vars(cluster), "name": "c2"}))
    finally:
        os.chown("/", 0, 0)  # in case upstream's chown of "/" ever came back
        remove_account(account)


@root_only
def test_a_name_whose_account_is_anothers_gets_no_cluster(tmp_path, monkeypatch):
    import asyncio
    from types import SimpleNamespace

    from dask_gateway_server.backends.base import PublicException

    from pangeohub.isolation.gateway import PangeoIsolatedLocalBackend

    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "state").mkdir(mode=0o700)
    backend = PangeoIsolatedLocalBackend(clusters_directory=str(tmp_path / "clusters"))
    taken = account_name("jupyter-", "carol")
    AccountRegistry.at(tmp_path / "state" / "accounts.db").claim("someone-else", taken)
    user = SimpleNamespace(name="carol", groups=[])
    with pytest.raises(PublicException, match="already belongs to another person"):
        asyncio.run(backend.start_cluster(user, {}))


def test_the_hub_says_when_disks_are_plain_directories():
    line = Isolation(loop_disks=False).summary()
    if os.geteuid() == 0:
        assert "plain directory without a size limit (c.Isolation.loop_disks is off)" in line
    else:
        assert "NOT isolated" in line


@root_only
def test_internal_ssl_is_refused_as_root(tmp_path, monkeypatch):
    """JupyterHub's move_certs would copy certificates into people's homes by path."""
    from traitlets.config import Config

    from pangeohub.assembly import ConfigurationError, configure

    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
    c = Config()
    c.JupyterHub.internal_ssl = True
    with pytest.raises(ConfigurationError, match="internal_ssl is on") as refused:
        configure(c)
    assert "c.HTTPS" in str(refused.value)
    c.JupyterHub.internal_ssl = False
    configure(c)  # the same configuration otherwise starts


@root_only
def test_only_what_root_alone_holds_in_tmp_is_bound_into_a_sandbox():
    """An admin's path in /tmp that someone else made or could swap is not bound (bwrap
    binds as root, following links)."""
    import tempfile

    from pangeohub.isolation.sandbox import held_by_root

    top = Path(tempfile.mkdtemp(prefix="pangeohub-held-"))
    try:
        os.chmod(top, 0o755)
        (top / "wheels").mkdir(mode=0o755)
        (top / "open").mkdir(mode=0o777)
        os.chmod(top / "open", 0o777)
        (top / "link").symlink_to("/etc")
        assert held_by_root(str(top / "wheels"))
        assert not held_by_root(str(top / "open"))
        assert not held_by_root(str(top / "link"))
        os.chown(top / "wheels", 1, 1)  # someone else's
        assert not held_by_root(str(top / "wheels"))
        assert not held_by_root("/etc")  # not in a directory the sandbox replaces
    finally:
        import shutil

        shutil.rmtree(top)
