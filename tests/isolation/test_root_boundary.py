"""Issue 28: the back doors. Root-run hub code that works on trees a person controls,
and what people share on one machine, attacked by a person's own code in their server.

The real hub as root with the bundle's defaults (the package's hub, shared with
test_isolation_hub); every attack is code run in a person's kernel or in their Dask
scheduler or worker; every target is a directory this module makes, closed to everyone
but root.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import sqlite3
import textwrap
import time
from pathlib import Path

import pytest

from pangeohub.isolation.accounts import account_name
from tests.isolation.conftest import COLLIDER
from tests.isolation.test_isolation_hub import Person
from tests.isolation_cleanup import hub_id

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(os.geteuid() != 0, reason="isolation happens only when the hub is root"),
]

MiB = 2**20


class Resident(Person):
    """A person whose notebook stays open: every cell of theirs here runs in one kernel."""

    @property
    def notebook(self):
        if not hasattr(self, "_notebook"):
            self._notebook = self.kernel()
        return self._notebook

    def run(self, code: str, timeout: float = 120):
        return self.notebook.run(textwrap.dedent(code), timeout=timeout)

    def close(self) -> None:
        if hasattr(self, "_notebook"):
            self._notebook.close()


@pytest.fixture(scope="module")
def grace(hub):
    person = Resident(hub, "grace")
    yield person
    person.close()


@pytest.fixture(scope="module")
def neighbour(hub):
    """Another person on the machine (whose hub name gets a hashed account)."""
    person = Resident(hub, "ada.x")
    yield person
    person.close()


def scratch(person) -> str:
    """The person's scratch directory, asked for as their code does (made at first use)."""
    code = """
import os, urllib.request
request = urllib.request.Request(os.environ["PANGEO_SCRATCH_SERVICE_URL"] + "credentials",
    headers={"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]})
urllib.request.urlopen(request, timeout=30).read()
print(os.environ["PANGEO_SCRATCH"].removeprefix("file://"))
"""
    result = person.run(code)
    assert result.error is None, result
    return result.output.strip()


@pytest.fixture
def target(tmp_path):
    """A directory only root may enter, as the hub's state or another's home would be."""
    directory = tmp_path / "root-only"
    directory.mkdir(mode=0o700)
    (directory / "precious").write_text("kept")
    return directory


@pytest.fixture(scope="module")
def cluster(grace):
    """grace's Dask cluster, driven from her notebook (kept open for the module)."""
    kernel = grace.notebook
    kernel.name = run(
        kernel,
        """
        import os
        from dask_gateway import GatewayCluster
        cluster = GatewayCluster()
        client = cluster.get_client()
        print(cluster.name)
        """,
        timeout=180,
    )
    yield kernel
    kernel.run("client.close(); cluster.shutdown()", timeout=60)


def run(kernel, code: str, timeout: float = 120) -> str:
    """Run ``code`` in ``kernel``; the last line it printed."""
    result = kernel.run(textwrap.dedent(code), timeout=timeout)
    assert result.error is None and not result.died, result
    return result.output.strip().splitlines()[-1] if result.output.strip() else ""


def test_a_clusters_log_files_cannot_be_sent_elsewhere(hub, cluster, target):
    """Finding 2: the gateway (root) made each worker's log file in the cluster's
    ``logs`` directory, which the person owned: a link there made root create files
    wherever it pointed."""
    swapped = run(
        cluster,
        f"""
    def swap():
        import os
        try:
            os.rename("logs", "logs.mine")
            os.symlink({str(target)!r}, "logs")
            return "swapped"
        except OSError as error:
            return type(error).__name__
    print(client.run_on_scheduler(swap))
    """,
    )
    run(cluster, "cluster.scale(1); client.wait_for_workers(1, timeout=120); print('ok')", 180)
    assert sorted(p.name for p in target.iterdir()) == ["precious"], f"swap: {swapped}"
    assert swapped == "PermissionError"


def test_workers_are_held_to_their_memory_by_the_kernel(hub, cluster):
    """Finding 11: workers ran outside the person's cgroup, so switching dask's own
    memory checks off let a worker use far more than its worker_memory."""
    facts = json.loads(
        run(
            cluster,
            """
    import json
    cluster.scale(1)
    client.wait_for_workers(1, timeout=120)
    def inside(dask_worker):
        worker = dask_worker
        worker.memory_manager.memory_pause_fraction = False
        worker.memory_manager.memory_spill_fraction = False
        worker.memory_manager.memory_target_fraction = False
        worker.memory_manager.memory_terminate_fraction = False
        return {"limit": worker.memory_manager.memory_limit,
                "cgroup": open("/proc/self/cgroup").read()}
    facts = list(client.run(inside).values())[0]
    def nanny_off(dask_worker):  # the nanny's own check, which would end the worker at 95 %
        dask_worker.periodic_callbacks.pop("memory_monitor").stop()
    client.run(nanny_off, nanny=True)
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    print(json.dumps(facts))
    """,
        )
    )
    outcome = run(
        cluster,
        f"""
    def hog():
        block = bytearray({int(facts["limit"] * 1.5)})
        block[::4096] = b"x" * len(block[::4096])
        return len(block)
    try:
        print("allocated", client.submit(hog, pure=False).result(timeout=120))
    except Exception as error:
        print(type(error).__name__)
    """,
        timeout=180,
    )
    assert outcome == "KilledWorker", f"a worker held 1.5 x its memory: {outcome}"
    # in a cgroup of its own, under its person's
    account = account_name("jupyter-", "grace")
    assert f"/{account}/_dask-{cluster.name}/worker-" in facts["cgroup"], facts["cgroup"]


def test_cluster_names_and_dashboards_stay_private(hub, cluster, neighbour):
    """Finding 9: servers were given the gateway proxy's unguarded address, and every
    cluster's name could be read from /tmp, where each cluster's directory was (and from
    the cgroup tree, where each cluster's workers are held)."""
    dashboard = "/clusters/" + cluster.name + "/status"
    seen = json.loads(
        neighbour.run(
            f"""
import json, os, re, urllib.request, urllib.error
names = []  # what looks like a cluster's name (32 hex digits) where clusters live
for place in ("/tmp", {str(Path(f"/srv/pangeohub/{hub_id(hub.state_dir)}/clusters"))!r}):
    try:
        entries = list(os.scandir(place))
    except OSError:
        entries = []
    for entry in entries:
        names += re.findall("[0-9a-f]{{32}}$", entry.name)
        try:
            names += [n for inner in os.listdir(entry.path)
                      for n in re.findall("[0-9a-f]{{32}}$", inner)]
        except OSError:
            pass
# cgroup directories are readable by every account: <account>/_dask-<cluster name>
for top, dirs, files in os.walk("/sys/fs/cgroup"):
    names += [n for d in dirs for n in re.findall("[0-9a-f]{{32}}$", d)]
    if top.count("/") > 9:
        dirs.clear()
def get(headers):
    request = urllib.request.Request(os.environ["DASK_GATEWAY__ADDRESS"] + {dashboard!r},
                                     headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=30).status
    except urllib.error.HTTPError as error:
        return error.code
token = {{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}}
print(json.dumps({{"names": names, "anonymous": get({{}}), "neighbour": get(token)}}))
"""
        ).output.splitlines()[-1]
    )
    assert cluster.name not in seen["names"], "a neighbour found grace's cluster's name"
    assert seen["anonymous"] == 401 and seen["neighbour"] == 403, seen
    # its owner's server reaches it, with its own token (as the Lab extension does)
    own = run(
        cluster,
        f"""
    import urllib.request
    request = urllib.request.Request(os.environ["DASK_GATEWAY__ADDRESS"] + {dashboard!r},
        headers={{"Authorization": "token " + os.environ["JUPYTERHUB_API_TOKEN"]}})
    print(urllib.request.urlopen(request, timeout=30).status)
    """,
    )
    assert own == "200"


def test_a_clusters_own_ports_answer_only_the_guard(hub, cluster, neighbour):
    """Finding 9, its last instance: a scheduler's dashboard and a worker's HTTP server
    listen on loopback ports that every account can find (/proc/net/tcp names each
    listener's uid) and reach, and the gateway's own proxy serves any cluster whose name
    is known (a shared notebook, a screenshot). Both now answer only the guard."""
    run(cluster, "cluster.scale(1); client.wait_for_workers(1, timeout=120); print('ok')", 180)
    owner = pwd.getpwnam(account_name("jupyter-", "grace")).pw_uid
    settings = json.loads((hub.state_dir / "services" / "dask-dashboards.json").read_text())
    proxy = settings["DashboardGuard"]["upstream"] + settings["DashboardGuard"]["prefix"]
    seen = json.loads(
        neighbour.run(
            f"""
import json, urllib.request, urllib.error
listening = set()  # grace's loopback listeners, as /proc/net/tcp shows them to anyone
for line in open("/proc/net/tcp").read().splitlines()[1:]:
    fields = line.split()
    address, port = fields[1].split(":")
    if fields[3] == "0A" and int(fields[7]) == {owner} and address == "0100007F":
        listening.add(int(port, 16))
def get(url):
    try:
        answer = urllib.request.urlopen(url, timeout=10)
        return answer.status, answer.read(300).decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read(300).decode(errors="replace")
    except Exception as error:  # a TLS port (the cluster's comms) answers no HTTP
        return 0, type(error).__name__
answers = {{}}
for port in sorted(listening):
    for path in ("/status", "/metrics", "/health", "/info/main/workers.html"):
        answers[f"{{port}}{{path}}"] = get(f"http://127.0.0.1:{{port}}{{path}}")
answers["proxy"] = get({proxy!r} + "/clusters/" + {cluster.name!r} + "/status")
print(json.dumps({{"ports": sorted(listening), "answers": answers}}))
"""
        ).output.splitlines()[-1]
    )
    answers = seen["answers"]
    served = {where: answer for where, answer in answers.items() if answer[0] not in (0, 403, 404)}
    assert not served, f"grace's cluster answered a neighbour: {served}"
    gated = [where for where, (code, body) in answers.items() if code == 403 and "hub" in body]
    # the scheduler's dashboard, the worker's HTTP server and the proxy's route were found
    assert answers["proxy"][0] == 403 and len({w.split("/")[0] for w in gated}) >= 3, seen


def test_temporary_space_and_processes_are_each_persons_own(hub, grace, neighbour):
    """Finding 10: /tmp and /dev/shm were shared, and distributed reuses a
    /tmp/dask-scratch-space someone else made, so another person could swap a
    worker's spill directory."""
    grace.run(
        """
        import contextlib, os
        open("/dev/shm/planted", "w").write("grace")
        open("/var/tmp/planted", "w").write("grace")
        with contextlib.suppress(OSError):
            os.makedirs("/tmp/dask-scratch-space/worker-planted", exist_ok=True)
            os.chmod("/tmp/dask-scratch-space", 0o777)
        """
    )
    seen = json.loads(
        neighbour.run(
            """
import json, os, pathlib, tempfile
from distributed.diskutils import WorkSpace
space = WorkSpace(os.path.join(tempfile.gettempdir(), "dask-scratch-space"))
owner = os.stat(space.base_dir).st_uid
uids = set()
for proc in pathlib.Path("/proc").iterdir():
    if proc.name.isdigit():
        try:
            uids.add(proc.stat().st_uid)
        except OSError:
            pass
planted = ["/dev/shm/planted", "/var/tmp/planted", space.base_dir + "/worker-planted"]
print(json.dumps({"spill_owner": owner, "me": os.getuid(),
                  "planted": [p for p in planted if os.path.exists(p)], "uids": sorted(uids)}))
"""
        ).output.splitlines()[-1]
    )
    assert seen["spill_owner"] == seen["me"], "the neighbour's spill space is grace's"
    assert not seen["planted"]
    assert set(seen["uids"]) <= {0, seen["me"]}, f"the neighbour sees others' processes: {seen}"


# The neighbour's code: subscribe to every port grace's account listens on at
# 127.0.0.1 (/proc/net/tcp names each socket's owner) as a kernel's IOPub subscriber
# would, and keep what arrives for 30 s.
SUBSCRIBE_TO_GRACES_PORTS = """
import threading, time, zmq
def listening(uid):
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[7]) == uid:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)
ports = listening(GRACE_UID)
heard = []
poller = zmq.Poller()
for port in ports:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"tcp://127.0.0.1:{port}")
    poller.register(sub, zmq.POLLIN)
def listen():
    end = time.monotonic() + 30
    while time.monotonic() < end:
        for sub, _ in poller.poll(200):
            heard.extend(sub.recv_multipart())
threading.Thread(target=listen, daemon=True).start()
time.sleep(1)  # connected before grace speaks
print(len(ports))
"""


def test_a_kernels_messages_reach_nobody_else(hub, grace, neighbour):
    """Kernels spoke over TCP on 127.0.0.1: anyone on the machine could subscribe to a
    kernel's IOPub port (a PUB socket needs no key to listen to) and read every output.
    Kernels speak over IPC sockets in the server's own runtime directory instead."""
    uid = int(grace.run("import os; print(os.getuid())").output.strip())
    ports = neighbour.run(SUBSCRIBE_TO_GRACES_PORTS.replace("GRACE_UID", str(uid)))
    assert ports.error is None, ports
    assert int(ports.output.strip()) >= 1, "grace's server listens on no port to try"
    grace.run("import time\nfor _ in range(10):\n    print('grace-secret-7f3a'); time.sleep(0.3)")
    heard = neighbour.run("print(any(b'grace-secret-7f3a' in part for part in heard))")
    assert heard.output.strip() == "False", "another person read grace's kernel output"


def test_temporary_space_and_scratch_are_bounded(hub, grace):
    """Finding 11: nothing held one person to a share of /tmp or of scratch."""
    scratch(grace)
    code = """
import errno, os
def fill(path, size):
    written = 0
    try:
        with open(path, "wb") as f:
            while written < size:
                f.write(bytes(8 * 2**20))
                f.flush()
                written += 8 * 2**20
            os.fsync(f.fileno())
        return "fit"
    except OSError as error:
        return errno.errorcode[error.errno]
    finally:
        os.remove(path)
scratch = os.environ["PANGEO_SCRATCH"].removeprefix("file://")
print(fill("/tmp/fill", 40 * 2**20), fill(scratch + "/fill", 72 * 2**20))
"""
    result = grace.run(code, timeout=120)
    assert result.output.split() == ["ENOSPC", "ENOSPC"], result


def test_the_scratch_sweep_never_follows_a_link(hub, grace, target):
    """Finding 3: root's sweep of old scratch files walked by path, so a directory
    swapped for a link during the walk made root delete files wherever it pointed."""
    names = [f"f{i}" for i in range(2000)]
    old = time.time() - 30 * 86400
    for name in names:  # the target holds old files of the same names
        path = target / name
        path.write_text("")
        os.utime(path, (old, old))
    outcome = grace.run(
        f"""
import os, time
os.chdir({scratch(grace)!r})
os.makedirs("d", exist_ok=True)
old = time.time() - 30 * 86400
for i in range({len(names)}):
    with open(f"d/f{{i}}", "w"):
        pass
    os.utime(f"d/f{{i}}", (old, old))
before = os.stat("d").st_mtime_ns
deadline = time.time() + 60
while os.stat("d").st_mtime_ns == before and time.time() < deadline:
    pass  # the sweep has begun when it first removes something from d
swapped = time.time() < deadline
os.rename("d", "d.real")
os.symlink({str(target)!r}, "d")
until = time.time() + 5  # the sweep ends here, emptying d.real or what d points to
while os.listdir("d.real") and time.time() < until:
    time.sleep(0.05)
os.remove("d")
print("swapped" if swapped else "no sweep")
""",
        timeout=120,
    )
    assert outcome.output.strip().endswith("swapped"), outcome
    assert len(list(target.iterdir())) == len(names) + 1, "root's sweep deleted the target's files"


def test_one_account_per_hub_name(hub, neighbour):
    """Finding 5: a plain name equal to another name's hashed account got that
    account, and so the other's disks."""
    neighbour.run("open('secret.txt', 'w').write('ada.x only')")
    collider = Person(hub, COLLIDER)
    seen = collider.run(
        "import os, pwd; print(pwd.getpwuid(os.getuid()).pw_name, os.path.exists('secret.txt'))"
    ).output.split()
    assert seen[1] == "False" and seen[0] != account_name("jupyter-", "ada.x"), seen
    # Which account is whose is recorded; a name whose account is already another's is
    # refused with a message, never given it.
    registry = hub.state_dir / "accounts.db"
    with sqlite3.connect(registry) as db:
        recorded = dict(db.execute("SELECT hub_name, account FROM accounts"))
        assert recorded["ada.x"] != recorded[COLLIDER] == seen[0]
        db.execute(
            "INSERT INTO accounts VALUES (?, ?, ?)",
            ("someone-else", account_name("jupyter-", "carol"), time.time()),
        )
    carol = hub.login("carol")
    response = hub.api(carol, "post", "/users/carol/server", json={})
    assert response.status_code == 409, response.text
    assert re.search(r"already belongs to another person", response.json()["message"])
