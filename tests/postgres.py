"""A real PostgreSQL server for tests, from Debian's packages, in a temporary directory.

    with PostgresServer(tmp_path) as pg:        # initdb + postgres on a free loopback port
        url = pg.create_database("hub")          # postgresql+psycopg://...@127.0.0.1:<port>/hub

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` system
account Debian's package creates (made here if missing). It listens on 127.0.0.1 only,
with password authentication for TCP; the data directory is removed on stop.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path

from .hubprocess import free_port

PG_BIN_DIRS = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15)]
ACCOUNT = "postgres"


def pg_bin() -> Path | None:
    """The directory of Debian's PostgreSQL server binaries, if installed."""
    return next((d for d in PG_BIN_DIRS if (d / "postgres").exists()), None)


class PostgresServer:
    """initdb + postgres on 127.0.0.1:<free port>, owned by a non-root account."""

    def __init__(self, workdir: Path, timeout: float = 60):
        self.bin = pg_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL is not installed (make setup installs postgresql-15)")
        self.workdir = Path(workdir)
        self.data = self.workdir / "pgdata"
        self.port = free_port()
        self.user = "pangeohub"
        self.password = secrets.token_urlsafe(16)
        self.timeout = timeout
        self.proc: subprocess.Popen | None = None

    # --- running as a non-root account ----------------------------------------

    def _account(self) -> pwd.struct_passwd | None:
        if os.getuid() != 0:
            return None
        try:
            return pwd.getpwnam(ACCOUNT)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
                + [ACCOUNT],
                check=True,
            )
            return pwd.getpwnam(ACCOUNT)

    def _run(self, *cmd: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, preexec_fn=self._demote(), **kwargs)

    def _demote(self):
        account = self._account()
        if account is None:
            return None

        def demote():
            os.setgid(account.pw_gid)
            os.setgroups([])
            os.setuid(account.pw_uid)

        return demote

    # --- lifecycle ------------------------------------------------------------

    def start(self) -> PostgresServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        account = self._account()
        self.data.mkdir(mode=0o700)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if account is not None:
            os.chown(self.workdir, account.pw_uid, account.pw_gid)
            os.chown(self.data, account.pw_uid, account.pw_gid)
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        pwfile.chmod(0o600)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-instructions",
            check=True,
            capture_output=True,
            cwd=self.workdir,
        )
        pwfile.unlink()
        log = open(self.workdir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.workdir),  # its Unix socket stays in the temporary directory
                "-c",
                "fsync=off",  # a test database: durability across power loss is not needed
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._demote(),
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log()}")
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"postgres did not accept connections in {self.timeout}s")

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then the data directory goes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        path = self.workdir / "postgres.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # --- databases ------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URL (psycopg 3 driver)."""
        self._run(
            str(self.bin / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            self.user,
            name,
            check=True,
            capture_output=True,
            env={**os.environ, "PGPASSWORD": self.password},
        )
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"
