"""End-to-end fixtures: a real PostgreSQL server for the hub's database."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.postgres import PostgresServer, pg_bin


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server for the session (Debian's packages; `make setup` installs them)."""
    if pg_bin() is None:
        pytest.fail("PostgreSQL is not installed: run `make setup` (it installs postgresql-15)")
    # not under pytest's 0700 temporary root: the server runs as the postgres account
    workdir = Path(tempfile.mkdtemp(prefix="pangeohub-pg-"))
    try:
        with PostgresServer(workdir) as server:
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres) -> str:
    """A fresh database on the session's server, as a SQLAlchemy URL for c.JupyterHub.db_url."""
    return postgres.create_database(f"hub_{uuid.uuid4().hex[:12]}")
