"""The tests' own small init: runs systemd unit files' commands where systemd is not PID 1.

It reads what systemd would read from each unit (``ExecStartPre``, ``ExecStart``,
``Environment``, ``WorkingDirectory``, ``Restart``, ``RestartSec``), starts the units in
the order given, restarts one that exits with a failure when its ``Restart=`` says so,
kills what a unit's main process leaves behind when it dies (systemd's cgroup), and stops
units as ``KillMode=mixed`` does (SIGTERM to the main process, then SIGKILL to the rest).
:meth:`Supervisor.power_off` kills every process at once, as a machine losing power does.
"""

from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Unit:
    name: str
    pre: list[list[str]]
    command: list[str]
    environment: dict[str, str]
    workdir: str | None
    restart: str
    restart_sec: float
    proc: subprocess.Popen | None = None
    starts: int = 0
    log: Path | None = None
    stopping: bool = field(default=False)
    family: dict = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Unit:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # keys are case-sensitive
        # systemd allows a key several times (Environment=): keep every value.
        lines, environment = [], {}
        for line in path.read_text().splitlines():
            if line.startswith("Environment="):
                key, _, value = line.removeprefix("Environment=").partition("=")
                environment[key] = value
            else:
                lines.append(line)
        parser.read_string("\n".join(lines))
        service = parser["Service"]
        prefix = "ExecStartPre="
        return cls(
            name=path.name,
            pre=[
                shlex.split(line.removeprefix(prefix)) for line in lines if line.startswith(prefix)
            ],
            command=shlex.split(service["ExecStart"]),
            environment=environment,
            workdir=service.get("WorkingDirectory"),
            restart=service.get("Restart", "no"),
            restart_sec=float(service.get("RestartSec", "0.1")),
        )


class Supervisor:
    """Run units' commands with systemd's restart rules (``Restart=on-failure``)."""

    def __init__(self, unit_files: list[Path], log_dir: Path):
        self.units = [Unit.read(path) for path in unit_files]
        self.log_dir = Path(log_dir)
        self._lock = threading.Lock()
        self._watching = False
        self._thread: threading.Thread | None = None

    def unit(self, name: str) -> Unit:
        return next(u for u in self.units if u.name == name)

    def _spawn(self, unit: Unit) -> None:
        unit.log = self.log_dir / f"{unit.name}.log"
        env = {**{"LANG": "C.UTF-8"}, **unit.environment}
        with open(unit.log, "ab") as log:
            for pre in unit.pre:
                subprocess.run(pre, env=env, cwd=unit.workdir, stdout=log, stderr=log, check=True)
            unit.proc = subprocess.Popen(
                unit.command,
                env=env,
                cwd=unit.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        unit.starts += 1
        unit.stopping = False

    def start(self) -> None:
        """Start every unit (as at boot: in order, without waiting for one another)."""
        with self._lock:
            for unit in self.units:
                self._spawn(unit)
        self._watching = True
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while self._watching:
            with self._lock:
                for unit in self.units:
                    if unit.proc is None or unit.stopping:
                        continue
                    if unit.proc.poll() is None:
                        unit.family = descendants(unit.proc.pid)  # what its cgroup holds
                        continue
                    kill(unit.family)  # systemd ends what a dead main process left
                    failed = unit.proc.returncode != 0
                    if unit.restart == "always" or (unit.restart == "on-failure" and failed):
                        time.sleep(unit.restart_sec)
                        self._spawn(unit)
            time.sleep(0.1)

    def restart(self, name: str, timeout: float = 30) -> None:
        """``systemctl restart NAME``."""
        unit = self.unit(name)
        with self._lock:
            unit.stopping = True
            _stop(unit.proc, timeout)
            self._spawn(unit)

    def stop(self, timeout: float = 60) -> None:
        """``systemctl stop`` every unit, the last started first."""
        self._watching = False
        with self._lock:
            for unit in reversed(self.units):
                unit.stopping = True
                _stop(unit.proc, timeout)

    def power_off(self) -> None:
        """Every unit's processes, and all they started, die at once; nothing cleans up."""
        self._watching = False
        with self._lock:
            doomed = {}
            for unit in self.units:
                if unit.proc is not None and unit.proc.poll() is None:
                    doomed.update(descendants(unit.proc.pid))
                    doomed[unit.proc.pid] = _started(unit.proc.pid)
            kill(doomed)
            for unit in self.units:
                unit.stopping = True
                if unit.proc is not None:
                    unit.proc.wait(10)


def _started(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot): tells a process from a later one
    that reuses its number."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    return None


def descendants(pid: int) -> dict[int, int | None]:
    """Every process below ``pid`` (children, grandchildren...) and when it started."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = {}, [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = _started(child)
                todo.append(child)
    return found


def kill(processes: dict[int, int | None]) -> None:
    """SIGKILL each process that is still the one seen (not a later one with its number)."""
    for pid, started in processes.items():
        if started is not None and _started(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _stop(proc: subprocess.Popen | None, timeout: float) -> None:
    """systemd's KillMode=mixed: SIGTERM to the main process, then SIGKILL what is left."""
    if proc is None or proc.poll() is not None:
        return
    left = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    kill(left)
