"""The real hub for end-to-end tests: `jupyterhub -f jupyterhub_config.py` with the
real configurable-http-proxy, on free loopback ports, from a temporary state directory.

    hub = HubProcess(tmp_path, extra_config="c.PangeoPolicy.named_server_limit = 2")
    hub.start()
    alice = hub.login("grace")          # a requests.Session signed in through the login form
    hub.api(alice, "post", "/users/grace/servers/one", json={})
    hub.stop()

Every server the hub starts carries a marker in its environment, so `stop()` also ends
any single-user process the hub left behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import requests

from pangeohub.hubconfig import free_port
from pangeohub.isolation.accounts import account_name
from pangeohub.isolation.disks import mounted_at

from .isolation_cleanup import clean_hub, hub_id

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
MARKER_ENV = "PANGEOHUB_TEST_HUB"


def wait_for_http(url: str, timeout: float = 60, *, proc=None) -> bool:
    """Poll ``url`` until it answers 2xx (True); False once ``proc`` exits or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=2).ok:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.3)
    return False


def stop_process_group(proc: subprocess.Popen | None, timeout: float = 30) -> None:
    """SIGTERM ``proc``'s process group, then SIGKILL it if it is still there after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


class HubError(RuntimeError):
    """The hub did not come up (its log tail says why)."""


class HubProcess:
    """One real jupyterhub process (and its proxy) for a test."""

    def __init__(
        self,
        workdir: Path,
        extra_config: str = "",
        env: dict | None = None,
        config_file: Path = REPO / "jupyterhub_config.py",
    ):
        self.workdir = Path(workdir)
        self.state_dir = self.workdir / "state"
        self.log_path = self.workdir / "jupyterhub.log"
        self.terminal = self.workdir / "terminal.txt"
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.marker = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_config = extra_config
        self.extra_env = env or {}
        self.config_file = Path(config_file)
        self.proc: subprocess.Popen | None = None
        self._started_once = False
        self._scratch_root: Path | None = None

    # --- lifecycle -------------------------------------------------------

    def prepare(self) -> dict[str, str]:
        """Write the test's admin file; the environment the hub runs with (what a
        systemd unit of this hub sets)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self._started_once:  # what a killed earlier run with this directory left
            clean_hub(self.state_dir)
            self._started_once = True
        self.terminal.touch(mode=0o600)  # a terminal exists before the hub writes to it
        override = self.workdir / "test_config.py"
        override.write_text(
            "c = get_config()  # noqa\n"
            f"c.Spawner.environment = {{{MARKER_ENV!r}: {self.marker!r}}}\n"
            # The sample users' passwords are shown once on a terminal: the test's is a file.
            f"c.LocalGroupsAuthenticator.password_terminal = {str(self.terminal)!r}\n"
            "c.LocalGroupsAuthenticator.bcrypt_rounds = 4  # tests make many hubs\n"
            + textwrap.dedent(self.extra_config)
            + "\n"
        )
        env = dict(os.environ)
        env.update(
            PANGEOHUB_STATE_DIR=str(self.state_dir),
            PANGEOHUB_CONFIG=str(override),
            PANGEOHUB_PORT=str(self.port),
            PANGEOHUB_HUB_PORT=str(self.hub_port),
            PANGEOHUB_PROXY_API_PORT=str(self.proxy_api_port),
            PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> HubProcess:
        """Start the hub and wait until its API answers."""
        env = self.prepare()
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(self.config_file)],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if wait_for_http(f"{self.url}/hub/api/", timeout, proc=self.proc):
            return self
        if self.proc.poll() is not None:
            raise HubError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}")
        self.stop()
        raise HubError(f"jupyterhub did not answer within {timeout}s:\n{self.log_tail()}")

    def restart(self, timeout: float = 60) -> HubProcess:
        """Stop only the hub (its servers run on if it keeps them), then start it again."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        self.proc = None
        return self.start(timeout)

    def stop(self, timeout: float = 30) -> None:
        """Stop the hub (it stops its proxy and servers), then any leftover server."""
        stop_process_group(self.proc, timeout)
        self.proc = None
        self.kill_leftover_servers()
        clean_hub(self.state_dir)  # as root: its mounts, cgroups and homes

    def kill_leftover_servers(self) -> None:
        """End every process this hub started that is still there: its servers (this
        hub's marker in their environment) and its managed services (its state directory
        in theirs: they run in sessions of their own, so a hub killed before it stopped
        them leaves them running; the culler, whose environment names no state directory,
        is known by its settings file's path on its command line)."""
        needles = {
            f"{MARKER_ENV}={self.marker}".encode(),
            f"PANGEOHUB_STATE_DIR={self.state_dir}".encode(),
        }
        state = f"{self.state_dir}/".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if needles & set(environ.split(b"\0")) or state in command:
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # --- servers' disks, as an admin would look at them ----------------------

    @property
    def isolated(self) -> bool:
        """Whether this hub runs servers as people's own accounts (root, not switched off)."""
        return os.geteuid() == 0 and "c.Isolation.enabled = False" not in self.extra_config

    def server_home(self, user: str, server: str = "") -> Path:
        """Where a server's home is (mounted while it runs, when isolated)."""
        directory = server or "_default"
        if self.isolated:
            homes = Path("/srv/pangeohub") / hub_id(self.state_dir) / "homes"
            return homes / account_name("jupyter-", user) / directory
        return self.state_dir / "servers" / user / directory

    @property
    def scratch_root(self) -> Path:
        """Where the local scratch backend keeps each user's directory (a test that sets
        ``c.LocalScratchBackend.root`` sets this too)."""
        if self._scratch_root is not None:
            return self._scratch_root
        if self.isolated:
            return Path("/srv/pangeohub") / hub_id(self.state_dir) / "scratch"
        return self.state_dir / "scratch"

    @scratch_root.setter
    def scratch_root(self, path: Path) -> None:
        self._scratch_root = Path(path)

    def server_disk_exists(self, user: str, server: str = "") -> bool:
        """Whether the server still has its disk (image or directory)."""
        if self.isolated:
            return self._image(user, server).exists()
        return self.server_home(user, server).exists()

    def _image(self, user: str, server: str) -> Path:
        account = account_name("jupyter-", user)
        return self.state_dir / "disks" / account / f"{server or '_default'}.img"

    def read_server_file(self, user: str, server: str, name: str) -> str:
        """A file on a server's disk, running or not (a stopped disk is mounted read-only)."""
        home = self.server_home(user, server)
        if not self.isolated or mounted_at(home):
            return (home / name).read_text()
        with tempfile.TemporaryDirectory() as look:
            image = str(self._image(user, server))
            subprocess.run(["mount", "-o", "loop,ro", image, look], check=True)
            try:
                return (Path(look) / name).read_text()
            finally:
                subprocess.run(["umount", look], check=True)

    # --- people ----------------------------------------------------------

    def passwords(self) -> dict[str, str]:
        """The local users' passwords, as the hub showed them once on its terminal."""
        shown = self.terminal.read_text() if self.terminal.exists() else ""
        return dict(re.findall(r"^Sign-in password for (\S+) \(.*\): (\S+)$", shown, re.M))

    def password(self, username: str) -> str:
        """The generated password of a local user."""
        return self.passwords()[username]

    def login(self, username: str, password: str | None = None) -> requests.Session:
        """A session signed in through the hub's login form, as a browser would."""
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=10).raise_for_status()
        response = session.post(
            f"{self.url}/hub/login",
            data={
                "username": username,
                "password": password if password is not None else self.password(username),
                "_xsrf": session.cookies.get("_xsrf", path="/hub/"),
            },
            allow_redirects=False,
            timeout=10,
        )
        if response.status_code != 302:
            raise HubError(f"sign-in as {username} failed: {response.status_code}")
        return session

    def api(self, session: requests.Session, method: str, path: str, **kwargs):
        """A hub REST API call (``path`` after /hub/api) with the session's cookie."""
        headers = kwargs.pop("headers", {})
        headers.setdefault("X-XSRFToken", session.cookies.get("_xsrf", path="/hub/") or "")
        kwargs.setdefault("timeout", 30)
        return session.request(method, f"{self.url}/hub/api{path}", headers=headers, **kwargs)

    def wait_for_server(self, session, username: str, server: str = "", timeout: float = 60):
        """Wait until a server is ready; its model."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api(session, "get", f"/users/{username}").json()
            server_model = model.get("servers", {}).get(server)
            if server_model and server_model.get("ready"):
                return server_model
            time.sleep(0.5)
        raise HubError(f"server {username}/{server} not ready in {timeout}s:\n{self.log_tail()}")

    def wait_for_stop(self, session, username: str, server: str = "", timeout: float = 60):
        """Wait until a server is no longer running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api(session, "get", f"/users/{username}").json()
            if server not in model.get("servers", {}):
                return
            time.sleep(0.5)
        raise HubError(f"server {username}/{server} still running after {timeout}s")

    def wait_for_removal(self, session, username: str, server: str, timeout: float = 60):
        """Wait until a deleted server is gone for good (stopped, its disk removed, no
        longer listed even among stopped servers)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api(session, "get", f"/users/{username}?include_stopped_servers=1")
            if server not in model.json().get("servers", {}):
                return
            time.sleep(0.5)
        raise HubError(f"server {username}/{server} still listed after {timeout}s")
