"""Shared test set-up: the local proxy on PATH, an output directory, the real hub, a real
PostgreSQL server for a hub's database."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from .hubprocess import REPO, HubProcess
from .isolation_cleanup import clean_hub, clean_leftovers, pangeohub_accounts, remove_accounts
from .postgres import PostgresServer, pg_bin

NODE_BIN = REPO / "node_modules" / ".bin"
os.environ["PATH"] = f"{NODE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
OUTPUT_DIR = Path(os.environ.get("PANGEOHUB_TEST_OUTPUT", REPO / "test-output"))
# Test hubs run servers on the hub's own Python unless a test sets c.Environments.enabled
# (tests/environments builds small environments; `make check-environment` the full one).
os.environ.setdefault("PANGEOHUB_ENVIRONMENTS", "off")


@pytest.fixture(scope="session", autouse=True)
def isolation_leftovers(tmp_path_factory):
    """As root, hubs make accounts, mounts and cgroups: remove them (and a killed run's),
    with the mounts left in pytest's temporary directories (pytest-of-<user>/) and the
    earlier runs' directories there."""
    if os.environ.get("PANGEOHUB_TESTS_SHARE_MACHINE"):
        # another run on this machine owns the clean-up (its hubs' accounts and mounts)
        yield
        return
    basetemp = tmp_path_factory.getbasetemp()
    ours = basetemp.parent.name.startswith("pytest-of-")  # not a --basetemp of the caller's
    temporary_root = basetemp.parent if ours else basetemp
    clean_leftovers(temporary_root, current=basetemp if ours else None)
    yield
    clean_leftovers(temporary_root)
    remove_accounts(pangeohub_accounts())


@pytest.fixture(scope="session", autouse=True)
def inprocess_state_dir():
    """In-process hubs (MockHub) get a state directory of this run's own, not the
    checkout's ``state/``: their disks and homes (keyed by it) start empty every run, and
    go with it. Real hubs (HubProcess) set their own."""
    state = Path(tempfile.mkdtemp(prefix="pangeohub-inprocess-state-"))
    previous = os.environ.get("PANGEOHUB_STATE_DIR")
    os.environ["PANGEOHUB_STATE_DIR"] = str(state)
    yield state
    if previous is None:
        os.environ.pop("PANGEOHUB_STATE_DIR", None)
    else:
        os.environ["PANGEOHUB_STATE_DIR"] = previous
    clean_hub(state)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def output_dir(request) -> Path:
    """A directory for what a test leaves for people to look at (screenshots)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    path = OUTPUT_DIR / name
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def docs_images() -> Path:
    """docs/images: the browser tests take the screenshots the docs show, so they never
    go stale (a run that changes what a page looks like changes them; commit them)."""
    return REPO / "docs" / "images"


@pytest.fixture
def hub_factory(tmp_path):
    """Start real hubs (``hub_factory(extra_config)``); all are stopped afterwards."""
    hubs: list[HubProcess] = []

    def start(extra_config: str = "", name: str = "hub", **kwargs) -> HubProcess:
        hub = HubProcess(tmp_path / name, extra_config=extra_config, **kwargs)
        hubs.append(hub)
        return hub.start()

    yield start
    for hub in hubs:
        hub.stop()


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
