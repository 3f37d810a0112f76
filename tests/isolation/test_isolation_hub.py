"""One machine, run as root with the defaults: each person is their own account.

The real hub (jupyterhub + configurable-http-proxy), started as root with the bundle's
defaults; every check is code run in a person's kernel, as their notebook would run it.
"""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest
import requests

from pangeohub.isolation.disks import mounted_at
from tests.hubprocess import REPO, VENV_BIN, HubProcess
from tests.isolation_cleanup import hub_id
from tests.kernel import Kernel

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation happens only when the hub is root"),
]

GiB = 2**30


class Person:
    """A signed-in person with a running server and a token for it."""

    def __init__(self, hub: HubProcess, name: str, server: str = ""):
        self.hub, self.name, self.server = hub, name, server
        self.session = hub.login(name)
        path = f"/users/{name}/servers/{server}" if server else f"/users/{name}/server"
        response = hub.api(self.session, "post", path, json={})
        assert response.status_code in (201, 202, 400), response.text  # 400: already running
        hub.wait_for_server(self.session, name, server, timeout=90)
        self.token = hub.api(self.session, "post", f"/users/{name}/tokens", json={}).json()["token"]
        prefix = f"/user/{name}/{server}/" if server else f"/user/{name}/"
        self.url = f"{hub.url}{prefix}"

    def kernel(self) -> Kernel:
        return Kernel(self.url, self.token)

    def run(self, code: str, timeout: float = 120):
        kernel = self.kernel()
        try:
            return kernel.run(textwrap.dedent(code), timeout=timeout)
        finally:
            kernel.close()

    def answers(self) -> bool:
        headers = {"Authorization": f"token {self.token}"}
        return requests.get(f"{self.url}api/status", headers=headers, timeout=10).ok


@pytest.fixture(scope="module")
def grace(hub):
    return Person(hub, "grace")


@pytest.fixture(scope="module")
def katherine(hub):
    return Person(hub, "katherine")


def service_tokens(hub) -> list[str]:
    """The API tokens of the hub's services (scratch, Dask Gateway, culler), read as root."""
    tokens = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            items = environ.read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(i.decode(errors="replace").split("=", 1) for i in items if b"=" in i)
        if env.get("JUPYTERHUB_SERVICE_NAME") and f":{hub.hub_port}/" in env.get(
            "JUPYTERHUB_API_URL", ""
        ):
            tokens.append(env["JUPYTERHUB_API_TOKEN"])
    assert len(tokens) >= 3, "the hub's services were not found"
    return tokens


def homes(hub) -> str:
    return f"/srv/pangeohub/{hub_id(hub.state_dir)}/homes"


def test_each_person_runs_as_their_own_account_in_a_clean_environment(hub, grace, katherine):
    code = """
        import json, os, pwd
        print(json.dumps({"user": pwd.getpwuid(os.getuid()).pw_name, "uid": os.getuid(),
                          "groups": os.getgroups(), "home": os.environ["HOME"],
                          "cwd": os.getcwd(), "env": sorted(os.environ)}))
    """
    me = json.loads(grace.run(code).output)
    other = json.loads(katherine.run(code).output)
    assert me["user"] == "jupyter-grace" and other["user"] == "jupyter-katherine"
    assert me["uid"] != other["uid"] and 0 not in (me["uid"], other["uid"])
    assert me["home"] == me["cwd"] == f"{homes(hub)}/jupyter-grace/_default"
    assert not [k for k in me["env"] if k.startswith("PANGEOHUB_") and k != "PANGEOHUB_TEST_HUB"]
    assert "CONFIGPROXY_AUTH_TOKEN" not in me["env"]
    assert mounted_at(me["home"]), "the server's home is not its own disk"
    # The hub says, once at start-up, what is isolated.
    assert "each person's servers run as their own account" in hub.log_path.read_text()


def test_the_hubs_files_and_other_peoples_files_are_out_of_reach(hub, grace, katherine):
    # katherine uses her scratch once (the service makes her directory on first use)
    use_scratch = (
        "import os, urllib.request\n"
        "request = urllib.request.Request(os.environ['PANGEO_SCRATCH_SERVICE_URL']"
        " + 'credentials', headers={'Authorization': 'token '"
        " + os.environ['JUPYTERHUB_API_TOKEN']})\n"
        "urllib.request.urlopen(request, timeout=30).read()\n"
        "print(os.environ['PANGEO_SCRATCH'])"
    )
    scratch = katherine.run(use_scratch).output.strip()
    katherine.run("open('diary.txt', 'w').write('private')")
    state, venv = hub.state_dir, VENV_BIN.parent
    secrets = [
        (state / name).read_text().strip()
        for name in ("cookie_secret", "proxy_auth_token", "crypt_key")
    ]
    secrets += list(hub.passwords().values())
    secrets += service_tokens(hub)
    reads = [
        state / "cookie_secret",
        state / "crypt_key",
        state / "proxy_auth_token",
        state / "jupyterhub.sqlite",
        f"{homes(hub)}/jupyter-katherine/_default/diary.txt",
    ]
    lists = [
        state,
        f"{homes(hub)}/jupyter-katherine/_default",
        scratch.removeprefix("file://"),
        f"{homes(hub)}/jupyter-katherine",
        homes(hub),
    ]
    writes = [
        REPO / "jupyterhub_config.d" / "99-mine.py",
        REPO / "pangeohub" / "mine.py",
        REPO / "jupyterhub_config.py",
        venv / "bin" / "mine",
        next((venv / "lib").glob("python3*/site-packages")) / "mine.pth",
        f"{homes(hub)}/jupyter-grace/link",
    ]
    code = f"""
        import json, os, pathlib
        def attempt(action, path):
            try:
                if action == "read":
                    open(path, "rb").read(1)
                elif action == "list":
                    os.listdir(path)
                else:
                    with open(path, "a"):
                        pass
                return "allowed"
            except OSError as error:  # EROFS: the hub's own files bound read-only
                return "ReadOnly" if error.errno == 30 else type(error).__name__
        seen = []
        for proc in pathlib.Path("/proc").iterdir():
            for name in ("cmdline", "environ"):
                try:
                    seen.append((proc / name).read_bytes().decode(errors="replace"))
                except OSError:
                    pass
        seen = "\\n".join(seen)
        print(json.dumps({{
            "read": {{str(p): attempt("read", p) for p in {[str(p) for p in reads]!r}}},
            "list": {{str(p): attempt("list", p) for p in {[str(p) for p in lists]!r}}},
            "write": {{str(p): attempt("write", p) for p in {[str(p) for p in writes]!r}}},
            "secrets_seen": sum(s in seen for s in {secrets!r}),
        }}))
    """
    result = json.loads(grace.run(code).output)
    # closed, not even there, or (a checkout under /tmp) bound into the sandbox read-only
    out_of_reach = ("PermissionError", "FileNotFoundError", "ReadOnly")
    for action in ("read", "list", "write"):
        allowed = [p for p, outcome in result[action].items() if outcome not in out_of_reach]
        assert not allowed, f"grace could {action}: {allowed} ({result[action]})"
    assert result["secrets_seen"] == 0, "a hub secret is visible in another process"
    for path in writes:
        assert path == REPO / "jupyterhub_config.py" or not os.path.exists(path)


def test_past_the_memory_limit_the_kernel_dies_and_the_server_answers(hub, grace):
    kernel = grace.kernel()
    try:
        result = kernel.run("x = bytearray(3 * 2**30)", timeout=120)
    finally:
        kernel.close()
    assert result.died, f"a 3 GiB allocation succeeded in a 2 GB server: {result}"
    assert grace.answers()
    assert grace.run("print(6 * 7)").output.strip() == "42"
    deadline = time.monotonic() + 30
    while "pangeohub: out of memory" not in hub.log_path.read_text():
        assert time.monotonic() < deadline, "the server never said it ran out of memory"
        time.sleep(0.5)


def test_writing_past_the_disk_size_stops_near_it(hub, grace, katherine):
    code = """
        import errno, os
        written, error = 0, None
        try:
            with open("fill", "wb") as f:
                chunk = bytes(16 * 2**20)
                while written < 3 * 2**30:
                    f.write(chunk)
                    f.flush()
                    written += len(chunk)
        except OSError as e:
            error = errno.errorcode[e.errno]
        os.remove("fill")
        print(written, error)
    """
    written, error = grace.run(code, timeout=300).output.split()
    assert error == "ENOSPC", f"3 GiB fit on a 2 GiB disk ({written} bytes written)"
    assert 1.7 * GiB <= int(written) <= 2 * GiB
    # Nobody else noticed.
    assert grace.answers() and katherine.answers()
    assert katherine.run("open('after.txt', 'w').write('ok'); print('ok')").output.strip() == "ok"
    # What grace deleted is the machine's again (the image is mounted with discard).
    image = hub.state_dir / "disks" / "jupyter-grace" / "_default.img"
    deadline = time.monotonic() + 60
    while image.stat().st_blocks * 512 > 512 * 2**20:
        assert time.monotonic() < deadline, "the deleted file still takes the machine's disk"
        time.sleep(0.5)


def test_two_busy_processes_are_held_near_one_cpu(grace):
    code = """
        import resource, subprocess, sys, time
        spin = "import time\\nend = time.time() + 4\\nwhile time.time() < end: pass"
        start = time.time()
        procs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
        for p in procs:
            p.wait()
        wall = time.time() - start
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        print((used.ru_utime + used.ru_stime) / wall)
    """
    cpus = float(grace.run(code).output)
    assert cpus <= 1.25, f"two busy processes used {cpus:.2f} CPUs of a 1 CPU server"


def test_dask_clusters_run_as_the_persons_account(grace):
    code = """
        import json, os
        from dask_gateway import GatewayCluster
        cluster = GatewayCluster()
        cluster.scale(1)
        client = cluster.get_client()
        client.wait_for_workers(1, timeout=120)
        uid = lambda: os.getuid()
        print(json.dumps([os.getuid(), client.run_on_scheduler(uid), *client.run(uid).values()]))
        client.close()
        cluster.shutdown()
    """
    mine, scheduler, worker = json.loads(grace.run(code, timeout=240).output.splitlines()[-1])
    assert mine == scheduler == worker != 0


def test_servers_and_disks_survive_a_hub_restart(hub, grace):
    grace.run("open('notes.txt', 'w').write('kept')")
    home = f"{homes(hub)}/jupyter-grace/_default"
    hub.restart()
    assert grace.answers(), "the running server was lost across the hub's restart"
    assert mounted_at(home)
    assert grace.run("print(open('notes.txt').read())").output.strip() == "kept"
    # Stopped: unmounted; started again: the same disk.
    assert hub.api(grace.session, "delete", "/users/grace/server").status_code in (202, 204)
    hub.wait_for_stop(grace.session, "grace")
    assert not mounted_at(home)
    again = Person(hub, "grace")
    assert again.run("print(open('notes.txt').read())").output.strip() == "kept"


def test_deleting_a_server_deletes_its_disk_and_nothing_else(hub, grace, katherine):
    one = Person(hub, "grace", "one")
    one.run("open('scratchpad.txt', 'w').write('temporary')")
    image = hub.state_dir / "disks" / "jupyter-grace" / "one.img"
    home = f"{homes(hub)}/jupyter-grace/one"
    assert image.exists() and mounted_at(home)
    response = hub.api(grace.session, "delete", "/users/grace/servers/one", json={"remove": True})
    assert response.status_code in (202, 204), response.text
    deadline = time.monotonic() + 60
    while image.exists() or os.path.exists(home):
        assert time.monotonic() < deadline, "the deleted server's disk is still there"
        time.sleep(0.3)
    assert not mounted_at(home)
    grace = Person(hub, "grace")
    assert grace.run("print(open('notes.txt').read())").output.strip() == "kept"
    assert katherine.run("print(open('diary.txt').read())").output.strip() == "private"


def test_deleting_a_user_keeps_their_account_and_scratch(hub, katherine):
    from pangeohub.isolation.accounts import lookup

    scratch = katherine.run("import os; print(os.environ['PANGEO_SCRATCH'])").output.strip()
    ada = hub.login("ada")
    assert hub.api(ada, "delete", "/users/katherine/server").status_code in (202, 204)
    hub.wait_for_stop(ada, "katherine")
    assert hub.api(ada, "delete", "/users/katherine").status_code == 204
    assert lookup("jupyter-katherine") is not None, "deleting the user removed their account"
    assert os.path.isdir(scratch.removeprefix("file://"))
    assert not hub.server_disk_exists("katherine")  # the server was deleted with the user
