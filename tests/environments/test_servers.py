"""Servers, their kernels and their Dask workers run in the profile's environment.

The real hub (as root: each person their own account) with a small ``pangeo``
environment (what a server needs, at the hub's versions, and wheels made here); every
check is code run in a person's kernel, as their notebook would run it.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pangeohub.environments.versions import read_version
from tests.binder.gitrepo import ServedRepos, readable_wheels
from tests.binder.launching import follow
from tests.hubprocess import REPO, VENV_BIN, HubProcess
from tests.kernel import Kernel

from .packages import make_wheel, small_environment

pytestmark = pytest.mark.e2e

HUB_PREFIX = Path(sys.prefix).resolve()  # the hub's own environment (the test's too)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("wheels")
    make_wheel(directory, "pangeotest_added", "1.0", "ADDED = 1\n")
    return directory


@pytest.fixture(scope="module")
def launch_wheels():
    """A wheel a launched repository asks for, where build accounts can read it (pytest's
    own directories are root's alone)."""
    wheel = ("pangeotest_launched", "1.0", "LAUNCHED = 1\n")
    with readable_wheels("pangeohub-launch-wheels-", *wheel) as directory:
        yield directory


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    served = ServedRepos(tmp_path_factory.mktemp("environments-git") / "served")
    yield served
    served.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, wheels, launch_wheels, repos):
    workdir = tmp_path_factory.mktemp("environments")
    config = small_environment(workdir / "environment", wheels)
    config += "c.JupyterHub.cleanup_servers = True\n"
    config += f"c.BinderLauncher.github_url = {repos.url!r}\n"
    config += f"c.BinderBuilder.find_links = [{str(launch_wheels)!r}]\n"
    config += "c.BinderBuilder.offline = True\n"
    hub = HubProcess(workdir / "hub", extra_config=config)
    hub.start()
    yield hub
    hub.stop()


def environments_root(hub: HubProcess) -> Path:
    from tests.isolation_cleanup import hub_id

    if hub.isolated:
        return Path(f"/srv/pangeohub/{hub_id(hub.state_dir)}/environments")
    return hub.state_dir / "environments"


class Person:
    """A signed-in person; starts and stops their server, runs code in its kernel."""

    def __init__(self, hub: HubProcess, name: str):
        self.hub, self.name = hub, name
        self.session = hub.login(name)
        self.url = f"{hub.url}/user/{name}/"
        self.token = ""

    def start(self, timeout: float = 180) -> list[str]:
        """Start the server; the messages of its progress stream."""
        response = self.hub.api(self.session, "post", f"/users/{self.name}/server", json={})
        assert response.status_code in (201, 202), response.text
        messages = []
        progress = self.hub.api(
            self.session, "get", f"/users/{self.name}/server/progress", stream=True, timeout=timeout
        )
        for line in progress.iter_lines():
            if line.startswith(b"data:"):
                event = json.loads(line[5:])
                messages.append(event.get("message", ""))
                if event.get("failed"):
                    raise AssertionError(f"{self.name}'s server failed: {messages}")
                if event.get("ready"):
                    break
        self.hub.wait_for_server(self.session, self.name, timeout=timeout)
        tokens = self.hub.api(self.session, "post", f"/users/{self.name}/tokens", json={})
        self.token = tokens.json()["token"]
        return messages

    def stop(self) -> None:
        self.close()
        response = self.hub.api(self.session, "delete", f"/users/{self.name}/server")
        assert response.status_code in (202, 204), response.text
        self.hub.wait_for_stop(self.session, self.name)

    _kernel: Kernel | None = None

    def run(self, code: str, timeout: float = 120):
        """Run ``code`` in the server's kernel; its last line of output as JSON."""
        if self._kernel is None:
            self._kernel = Kernel(self.url, self.token)
        result = self._kernel.run(textwrap.dedent(code), timeout=timeout)
        assert result.error is None, result.error + result.output
        return json.loads(result.output.strip().splitlines()[-1])

    def close(self) -> None:
        if self._kernel is not None:
            self._kernel.close()
            self._kernel = None


WHERE = """
    import json, os, sys
    import pangeohub, jupyterhub
    print(json.dumps({"executable": sys.executable, "prefix": sys.prefix, "path": sys.path,
                      "pangeohub": pangeohub.__file__, "jupyterhub": jupyterhub.__version__,
                      "env": {k: os.environ.get(k, "") for k in ("PANGEO_ENVIRONMENT",
                              "PANGEO_ENVIRONMENT_VERSION", "JUPYTER_IMAGE_SPEC", "PATH")}}))
"""


@pytest.fixture(scope="module")
def grace(hub):
    person = Person(hub, "grace")
    person.first_start = person.start()  # the first start builds the environment
    yield person
    person.close()


def current_version(hub):
    versions = list((environments_root(hub) / "pangeo").iterdir())
    return read_version(environments_root(hub), "pangeo", max(versions, key=os.path.getmtime).name)


def test_a_server_and_its_kernel_run_in_the_environment_not_the_hubs(hub, grace):
    # the first start built it: its progress said so, unless the build ended before the
    # stream was read (JupyterHub then sends only "ready"); the hub's log says so anyway
    built = "Building environment pangeo"
    assert any(built in m for m in grace.first_start) or built in hub.log_path.read_text()
    where = grace.run(WHERE)
    version = read_version(
        environments_root(hub), "pangeo", where["env"]["PANGEO_ENVIRONMENT_VERSION"]
    )
    assert version is not None and where["env"]["PANGEO_ENVIRONMENT"] == "pangeo"
    assert Path(where["prefix"]) == version.prefix
    assert where["env"]["PATH"].startswith(version.bin + os.pathsep)
    assert where["env"]["JUPYTER_IMAGE_SPEC"] == version.image
    # Nothing of the hub's environment is on the kernel's path; pangeohub's server-side
    # parts are the environment's own copy, jupyterhub-singleuser at the hub's version.
    paths = [Path(p).resolve() for p in where["path"] if p]  # "": the kernel's directory
    assert not [p for p in paths if p.is_relative_to(HUB_PREFIX) or p.is_relative_to(REPO)]
    assert Path(where["pangeohub"]).is_relative_to(version.site_packages)
    import jupyterhub

    assert where["jupyterhub"] == jupyterhub.__version__
    # The server process itself runs the environment's Python (read from the kernel: as
    # root the server's process ids are those of its sandbox's own PID namespace).
    server = grace.run(
        "import json, os, pathlib; pid = os.environ.get('JPY_PARENT_PID'); "
        "print(json.dumps(pid and pathlib.Path(f'/proc/{pid}/cmdline').read_text()))"
    )
    if server:
        assert server.split("\0")[0] == version.python


@pytest.mark.skipif(os.geteuid() != 0, reason="sealed for people's accounts when the hub is root")
def test_the_environment_is_sealed_against_its_users(hub, grace):
    version = current_version(hub)
    for root, dirs, files in os.walk(version.path):
        for name in (*dirs, *files):
            info = os.lstat(os.path.join(root, name))
            assert info.st_uid == 0
            if not stat.S_ISLNK(info.st_mode):
                assert not info.st_mode & 0o7222, os.path.join(root, name)  # no w, set-id
    attempt = grace.run(
        f"""
        import json, pathlib
        try:
            pathlib.Path({str(version.site_packages / "evil.pth")!r}).write_text("import os")
            print(json.dumps("written"))
        except OSError as error:
            print(json.dumps(type(error).__name__))
        """
    )
    assert attempt == "PermissionError"


MINE = """
    import json, os, pangeotest_mine
    print(json.dumps([pangeotest_mine.MINE, pangeotest_mine.__file__, os.environ["HOME"]]))
"""


def test_pip_install_user_lands_on_the_persons_disk(hub, grace, tmp_path):
    wheel = make_wheel(tmp_path, "pangeotest_mine", "1.0", "MINE = 1\n")
    payload = base64.b64encode(wheel.read_bytes()).decode()
    installed = grace.run(
        f"""
        import base64, json, os, pathlib, subprocess, sys
        wheel = pathlib.Path(os.environ["HOME"]) / {wheel.name!r}
        wheel.write_bytes(base64.b64decode({payload!r}))
        done = subprocess.run([sys.executable, "-m", "pip", "install", "--user", "--no-index",
                               "--quiet", str(wheel)], capture_output=True, text=True)
        print(json.dumps([done.returncode, done.stderr[-2000:]]))
        """
    )
    assert installed[0] == 0, installed[1]
    grace.close()  # a new kernel finds the new user site (as after "Restart kernel")
    found = grace.run(MINE)
    assert found[0] == 1 and found[1].startswith(os.path.join(found[2], ".local", "lib"))
    if hub.isolated:
        assert found[2] == str(hub.server_home("grace"))  # the server's own disk


WORKERS = """
    import json, sys
    from dask_gateway import GatewayCluster
    cluster = GatewayCluster()
    cluster.scale(1)
    client = cluster.get_client()
    client.wait_for_workers(1, timeout=90)
    def where():
        import sys
        try:
            import pangeotest_mine  # installed with pip install --user in the server
            mine = pangeotest_mine.MINE
        except ImportError:
            mine = None
        return [sys.executable, sys.prefix, mine]
    seen = client.run(where)
    scheduler = client.run_on_scheduler(lambda: __import__("sys").prefix)
    cluster.shutdown()
    print(json.dumps({"workers": list(seen.values()), "scheduler": scheduler,
                      "server": sys.prefix}))
"""


def test_dask_gateway_workers_run_in_the_servers_environment(hub, grace):
    # (after the test above: grace has a package of her own, installed with --user)
    out = grace.run(WORKERS, timeout=180)
    assert out["workers"] and all(prefix == out["server"] for _, prefix, _ in out["workers"])
    assert all(mine == 1 for _, _, mine in out["workers"])
    assert out["scheduler"] == out["server"]
    assert not Path(out["server"]).resolve().is_relative_to(HUB_PREFIX)


def admin_command(hub: HubProcess, *args: str) -> subprocess.CompletedProcess:
    """``pangeohub-environments`` as the admin runs it, on this hub's configuration."""
    return subprocess.run(
        [str(VENV_BIN / "pangeohub-environments"), "-f", str(hub.config_file), *args],
        env={
            **os.environ,
            "PANGEOHUB_STATE_DIR": str(hub.state_dir),
            "PANGEOHUB_CONFIG": str(hub.workdir / "test_config.py"),
        },
        capture_output=True,
        text=True,
        timeout=600,
    )


IMPORTS_ADDED = """
    import json, os
    try:
        import pangeotest_added
        added = pangeotest_added.ADDED
    except ImportError:
        added = None
    print(json.dumps([added, os.environ["PANGEO_ENVIRONMENT_VERSION"]]))
"""
FIRST_SCRATCH_WRITE = """
    import fsspec, json, os
    fsspec.get_mapper(f"{os.environ['PANGEO_SCRATCH']}/sub/path")["hello"] = b"world"
    back = fsspec.get_mapper(f"{os.environ['PANGEO_SCRATCH']}/sub/path")["hello"]
    print(json.dumps([back.decode(), os.environ["PANGEO_SCRATCH"]]))
"""
versions_seen: dict[str, str] = {}


@pytest.fixture(scope="module")
def katherine(hub):
    person = Person(hub, "katherine")
    yield person
    person.close()


def test_an_added_package_reaches_the_next_start_and_running_servers_keep_theirs(
    hub, grace, katherine
):
    before = grace.run(IMPORTS_ADDED)
    assert before[0] is None
    added = admin_command(hub, "add", "pangeotest-added")
    assert added.returncode == 0, added.stderr + added.stdout
    assert "for everyone" in added.stdout and "Running servers keep their version" in added.stdout
    assert "pangeotest-added: installed, version 1.0" in added.stdout
    # grace's running server keeps its version; katherine's first start gets the new one.
    assert grace.run(IMPORTS_ADDED) == before
    versions_seen["scratch before katherine's first start"] = str(
        (hub.scratch_root / "katherine").exists()
    )
    katherine.start()
    after = katherine.run(IMPORTS_ADDED)
    assert after[0] == 1 and after[1] != before[1]
    root = environments_root(hub) / "pangeo"
    assert {before[1], after[1]} <= {p.name for p in root.iterdir()}
    versions_seen.update(old=before[1], new=after[1])
    # The environments page lists the new version's packages.
    page = katherine.session.get(f"{hub.url}/hub/environments", timeout=30)
    assert page.status_code == 200 and "pangeotest-added" in page.text and after[1] in page.text


def test_the_scratch_snippet_works_at_a_servers_first_start(hub, katherine):
    # katherine's server has just started for the first time, and nothing asked for her
    # scratch credentials (Pangeo Cloud's guide, run as her account).
    assert versions_seen["scratch before katherine's first start"] == "False"
    back, url = katherine.run(FIRST_SCRATCH_WRITE)
    assert back == "world" and url == f"file://{hub.scratch_root}/katherine"
    written = hub.scratch_root / "katherine" / "sub" / "path" / "hello"
    assert written.read_bytes() == b"world"
    if hub.isolated:
        import pwd

        assert pwd.getpwuid(written.stat().st_uid).pw_name == "jupyter-katherine"


def test_a_restart_gets_the_new_version_keeps_user_installs_and_removes_the_old(hub, grace):
    grace.stop()
    grace.start()
    assert grace.run(IMPORTS_ADDED) == [1, versions_seen["new"]]
    assert grace.run(MINE)[0] == 1  # pip install --user survived the restart
    # No server runs the old version any more: the start removed it.
    root = environments_root(hub) / "pangeo"
    assert {p.name for p in root.iterdir()} == {versions_seen["new"]}


def test_the_picker_says_environment(hub, grace):
    page = grace.session.get(f"{hub.url}/hub/spawn/grace/other", timeout=30)
    assert page.status_code == 200
    assert "environment pangeo" in page.text and "image pangeo/pangeo-notebook" not in page.text


LAUNCHED = """
    import json, sys, pangeotest_launched, pangeotest_added
    print(json.dumps([pangeotest_launched.LAUNCHED, pangeotest_added.__file__, sys.prefix,
                      [p for p in sys.path if p]]))
"""


def test_a_launch_is_built_on_the_profiles_environment_not_the_hubs(hub, grace, repos):
    """A launch link's environment layers on the current version of the profile's
    environment: the repository's package, the environment's packages, nothing of the
    hub's own."""
    commit = repos.publish(
        "envorg", "layered", {"requirements.txt": "pangeotest_launched\n", "README.md": "x\n"}
    )
    headers = {"Authorization": f"token {grace.token}"}
    status, events = follow(
        f"{hub.url}/hub/api/binder/build/gh/envorg/layered/main", headers=headers, timeout=240
    )
    assert status == 200 and events[-1]["phase"] == "ready", events[-3:]
    server = f"layered-{commit[:7]}"
    kernel = Kernel(f"{hub.url}/user/grace/{server}/", grace.token)
    try:
        result = kernel.run(textwrap.dedent(LAUNCHED), timeout=120)
    finally:
        kernel.close()
    assert result.error is None, result.error + result.output
    launched, added_at, prefix, path = json.loads(result.output.strip().splitlines()[-1])
    version = current_version(hub)
    assert launched == 1 and Path(added_at).is_relative_to(version.site_packages)
    assert not Path(prefix).resolve().is_relative_to(HUB_PREFIX)
    assert not [p for p in path if Path(p).resolve().is_relative_to(HUB_PREFIX)]
    hub.api(grace.session, "delete", f"/users/grace/servers/{server}", json={"remove": True})
