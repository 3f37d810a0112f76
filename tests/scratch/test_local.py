"""The embedded default (`make run`): local scratch through the real hub and its service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.hubprocess import HubProcess

from .conftest import server_environment, user_token

pytestmark = pytest.mark.e2e

USER_SCRIPT = r"""
import os, fsspec
url = os.environ["PANGEO_SCRATCH"]
with fsspec.open(url + "/notes.txt", "w") as f:
    f.write("hello scratch")
with fsspec.open(url + "/notes.txt") as f:
    print(f.read().decode())
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # A stopped scratch service costs a server start its check_timeout: keep it short here;
    # and each start checks for itself (a start just before the service stops must not
    # answer for the one after).
    hub = HubProcess(
        tmp_path_factory.mktemp("scratch-local"),
        "c.ScratchEnvironment.check_timeout = 1\nc.ScratchEnvironment.health_cache_seconds = 0",
    )
    hub.start()
    yield hub
    hub.stop()


def test_default_config_gives_every_server_a_local_scratch_directory(hub):
    grace = hub.login("grace")
    assert hub.api(grace, "post", "/users/grace/server", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace")
    env = server_environment(hub, "grace")
    root = hub.scratch_root
    assert env["PANGEO_SCRATCH"] == f"file://{root}/grace" == env["SCRATCH_BUCKET"]
    assert env["PANGEO_SCRATCH_STATUS"] == "available"
    result = subprocess.run(
        [sys.executable, "-c", USER_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello scratch"
    assert (root / "grace" / "notes.txt").read_text() == "hello scratch"
    health = requests.get(f"{hub.url}/services/scratch/health", timeout=10).json()
    assert health == {"backend": "local", "expiry": "verified: 7 days"}
    answer = requests.get(
        f"{hub.url}/services/scratch/credentials",
        headers={"Authorization": f"token {user_token(hub, grace, 'grace')}"},
        timeout=10,
    ).json()
    assert answer["url"] == env["PANGEO_SCRATCH"] and answer["expiration"] is None
    hub.api(grace, "delete", "/users/grace/server")


def scratch_service_pid(hub) -> int:
    needle = f"PANGEOHUB_STATE_DIR={hub.state_dir}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"pangeohub.scratch.service" in cmdline and needle in environ.split(b"\0"):
            return int(entry.name)
    raise AssertionError("no scratch service process")


def test_server_starts_when_the_scratch_service_is_down(hub):
    # Stopped, not killed: the hub restarts a managed service that exits.
    pid = scratch_service_pid(hub)
    os.kill(pid, signal.SIGSTOP)
    try:
        katherine = hub.login("katherine")
        response = hub.api(katherine, "post", "/users/katherine/server", json={})
        assert response.status_code in (201, 202)
        hub.wait_for_server(katherine, "katherine")
        env = server_environment(hub, "katherine")
        assert env["PANGEO_SCRATCH_STATUS"] == "unavailable"
        assert env["PANGEO_SCRATCH"].endswith("/katherine")
        result = subprocess.run(
            [sys.executable, "-m", "pangeohub.scratch.cli", "--timeout", "2"],
            env={**env, "PANGEO_SCRATCH_SERVICE_URL": env["PANGEO_SCRATCH_SERVICE_URL"]},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1 and "unreachable" in result.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
    hub.api(katherine, "delete", "/users/katherine/server")
