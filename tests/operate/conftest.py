"""One machine set up as docs/operate/ says, as root: the hub installed as systemd units
(run by the tests' supervisor), HTTPS by caddy from pebble, people with servers and files.
The accounts, service, HTTPS, reboot and backup tests share it (in that order)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from pangeohub.hubconfig import free_port
from pangeohub.isolation.accounts import account_name
from tests.hubprocess import HubError, HubProcess, wait_for_http
from tests.isolation_cleanup import hub_id

from .admin import admin
from .docs_commands import doc_command
from .pebble import Pebble
from .supervisor import Supervisor

DOMAIN = "hub.pangeohub.test"
# The parts these tests need (scratch, disks, shared data); Dask Gateway and launch links
# only make each of the machine's starts slower.
MACHINE_CONFIG = """
c.GatewayService.enabled = False
c.BinderLauncher.enabled = False
c.Authenticator.admin_users = {"ada", "chief"}
c.Authenticator.auth_refresh_age = 1
"""


@pytest.fixture(scope="session")
def pebble(tmp_path_factory):
    server = Pebble(tmp_path_factory.mktemp("pebble")).start()
    yield server
    server.stop()


def https_config(pebble: Pebble, http_port: int, https_port: int, extra: str = "") -> str:
    return MACHINE_CONFIG + (
        f"c.HTTPS.domain = {DOMAIN!r}\n"
        f"c.HTTPS.acme_ca = {pebble.directory!r}\n"
        f"c.HTTPS.acme_ca_root = {str(pebble.listener_cert)!r}\n"
        f"c.HTTPS.http_port = {http_port}\n"
        f"c.HTTPS.https_port = {https_port}\n"
        f"{extra}\n"
    )


class Machine:
    """A hub installed with `pangeohub-admin install-service`, its units supervised."""

    def __init__(self, workdir: Path, pebble: Pebble):
        self.workdir = workdir
        self.pebble = pebble
        self.http_port, self.https_port = free_port(), free_port()
        self.hub = HubProcess(
            workdir / "hub",
            extra_config=https_config(pebble, self.http_port, self.https_port),
        )
        self.units_dir = workdir / "units"
        self.supervisor: Supervisor | None = None

    def install(self) -> subprocess.CompletedProcess:
        """As docs/operate/service.md says (the units in the test's directory, never
        enabled: on a host where systemd runs, nothing of the real system is touched)."""
        command = doc_command("service.md", "install-service")
        return admin(self.hub, *command, "--units-dir", str(self.units_dir), "--no-enable")

    def boot(self, timeout: float = 90) -> None:
        """Start every unit, as the machine does at boot; wait for the hub's API."""
        units = [self.units_dir / n for n in ("pangeohub.service", "pangeohub-https.service")]
        self.supervisor = Supervisor(units, self.workdir)
        self.supervisor.start()
        if not wait_for_http(f"{self.hub.url}/hub/api/", timeout):
            logs = "\n".join(p.read_text()[-3000:] for p in self.workdir.glob("*.service.log"))
            raise RuntimeError(f"the hub did not come up:\n{logs}")

    @property
    def homes(self) -> Path:
        return Path("/srv/pangeohub") / hub_id(self.hub.state_dir) / "homes"

    def account(self, user: str) -> str:
        return account_name("jupyter-", user)

    def shutdown(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        self.hub.stop()


@pytest.fixture(scope="session")
def machine(tmp_path_factory, pebble):
    if os.geteuid() != 0:
        pytest.skip("the machine is run as root (as `make test` does on CI): accounts, disks")
    machine = Machine(tmp_path_factory.mktemp("machine"), pebble)
    installed = machine.install()
    assert installed.returncode == 0, installed.stderr
    machine.boot()
    yield machine
    machine.shutdown()


def as_person(account: str, command: str) -> str:
    """Run a shell command as ``account`` (what the person's own code could do)."""
    result = subprocess.run(
        ["runuser", "-u", account, "--", "sh", "-c", command],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return result.stdout


def wait_until(condition, timeout: float = 60, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.3)


def server_model(hub: HubProcess, session: requests.Session, user: str, server: str):
    model = hub.api(session, "get", f"/users/{user}?include_stopped_servers=1").json()
    return model["servers"].get(server)


def can_sign_in(hub: HubProcess, name: str, password: str) -> bool:
    try:
        hub.login(name, password)
        return True
    except HubError:
        return False
