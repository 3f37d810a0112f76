"""Remove what isolated hubs made on this machine: mounts, cgroups, homes, accounts.

Tests run as root make real accounts (``jupyter-*``), loop mounts under
/srv/pangeohub/<hub id>/ and cgroups under pangeohub/<hub id>. Each hub's leftovers go
when the test harness stops it; accounts go at the end of the session. A killed earlier
run's leftovers are removed the same way (mounts whose image is gone, empty cgroups,
idle accounts).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

HOMES = Path("/srv/pangeohub")
CGROUPS = Path("/sys/fs/cgroup")
ACCOUNT_PREFIX = "jupyter-"
ACCOUNT_COMMENT = "pangeohub user"


def hub_id(state_dir: Path) -> str:
    """The id pangeohub.isolation.Isolation derives from a hub's state directory."""
    return hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:8]


def mounts_under(root: Path) -> list[str]:
    found = []
    prefix = str(root).rstrip("/") + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4].replace("\\040", " ")
        if point.startswith(prefix):
            found.append(point)
    return sorted(found, reverse=True)


def _cgroup_dirs(relative: str) -> list[Path]:
    return [CGROUPS / c / relative for c in ("memory", "cpu")] + [CGROUPS / relative]


def remove_cgroups(relative: str) -> None:
    """Kill every process in the cgroups below ``relative``, then remove them."""
    for top in _cgroup_dirs(relative):
        if not top.is_dir():
            continue
        for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True) + [top]:
            if not directory.is_dir():
                continue
            with contextlib.suppress(OSError):
                for pid in (directory / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(OSError):
                directory.rmdir()


def clean_hub(state_dir: Path) -> None:
    """Everything the isolated hub with this state directory left on the machine."""
    if os.geteuid() != 0:
        return
    ident = hub_id(state_dir)
    remove_cgroups(f"pangeohub/{ident}")
    for point in mounts_under(HOMES / ident):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    shutil.rmtree(HOMES / ident, ignore_errors=True)
    remove_build_accounts(ident)


def remove_build_accounts(ident: str) -> None:
    """The hub's Binder build accounts (pangeohub.binder.accounts), and what runs as them."""
    from pangeohub.binder.accounts import kill_processes_of

    for entry in pwd.getpwall():
        if entry.pw_name.startswith(f"pangeohub-build-{ident}-"):
            kill_processes_of(entry.pw_uid)
            subprocess.run(["userdel", entry.pw_name], check=False, capture_output=True)


def unmount_under(root: Path) -> None:
    """Unmount everything mounted below ``root`` (deepest first): the scratch roots and
    disks that hubs and backends made in a test's temporary directory."""
    for point in mounts_under(root):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def remove_earlier_runs(temporary_root: Path, current: Path) -> None:
    """Every earlier run's temporary directory (``pytest-<n>`` in ``temporary_root``) whose
    process is gone: pytest keeps the last run's, and a killed run's for days (its lock
    outlives it), each with hubs' disk images and environments; on a machine that is
    reused they would pile up until its disk is full."""
    for run in temporary_root.glob("pytest-*"):
        if run == current or run.is_symlink() or not run.is_dir():
            continue
        try:
            pid = int((run / ".lock").read_text())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _alive(pid):
            continue  # another session, still running
        shutil.rmtree(run, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(temporary_root: Path | None = None, current: Path | None = None) -> None:
    """What killed earlier runs left: mounts whose image is gone, empty cgroups, mounts in
    tests' temporary directories (``temporary_root``: pytest's, for this user) and, given
    this run's own (``current``), the earlier runs' directories."""
    if os.geteuid() != 0:
        return
    if temporary_root is not None:
        unmount_under(temporary_root)
        if current is not None:
            remove_earlier_runs(temporary_root, current)
    for point in mounts_under(HOMES):
        source = subprocess.run(
            ["findmnt", "-n", "-o", "SOURCE", point], capture_output=True, text=True
        ).stdout.strip()
        backing = Path(f"/sys/block/{Path(source).name}/loop/backing_file")
        with contextlib.suppress(OSError):
            if backing.read_text().strip().endswith("(deleted)"):
                subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)
    for top in _cgroup_dirs("pangeohub"):
        if top.is_dir():
            for directory in sorted(top.rglob("*"), key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only empty ones go


def pangeohub_accounts() -> set[str]:
    """The accounts pangeohub made on this machine (prefix and comment)."""
    return {
        entry.pw_name
        for entry in pwd.getpwall()
        if entry.pw_name.startswith(ACCOUNT_PREFIX) and entry.pw_gecos == ACCOUNT_COMMENT
    }


def remove_accounts(names: set[str]) -> None:
    """userdel each account; one still running a process (another run's) is kept."""
    for name in sorted(names):
        subprocess.run(["userdel", name], check=False, capture_output=True)
