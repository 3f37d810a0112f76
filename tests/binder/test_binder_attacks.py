"""Launches as an attacker: a repository's own build and the launcher's running server try
to get root to write or read for them, to change an environment others will run, or to
start a build the person never asked for. The package's real hub as root; targets are
directories the test makes under the hub's own /srv/pangeohub/<hub id>/.

The attacker is ``h14eve`` (account jupyter-h14eve), with a server of her own running.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests

from pangeohub.binder.accounts import COMMENT as BUILD_ACCOUNT_COMMENT
from tests.isolation_cleanup import hub_id

from .launching import BUILD_DISK, confirm, follow, hub_env_root, launch, run_in, stream_url

pytestmark = [pytest.mark.e2e]

EVE = "h14eve"


@pytest.fixture(scope="module")
def eve(hub):
    """Eve, signed in, with her default server running (her own code runs there)."""
    if not hub.isolated:
        pytest.skip("the attacks are against the hub as root (people as their own accounts)")
    session = hub.login(EVE)
    hub.api(session, "post", f"/users/{EVE}/server", json={})
    hub.wait_for_server(session, EVE, "", timeout=90)
    return session


@pytest.fixture(scope="module")
def places(hub):
    """Directories the test makes: ``root-only`` (0700, root's), ``victim`` (someone
    else's files, 0700), ``gate`` (readable by all: the test signals builds there)."""
    top = Path("/srv/pangeohub") / hub_id(hub.state_dir) / "h14-attack"
    top.mkdir(mode=0o711, parents=True, exist_ok=True)
    made = {}
    for name, mode in (("root-only", 0o700), ("victim", 0o700), ("gate", 0o755)):
        made[name] = top / name
        made[name].mkdir(mode=mode, exist_ok=True)
        os.chmod(made[name], mode)
    secret = made["victim"] / "runtime.txt"
    secret.write_text("h14-secret-of-the-victim\n")
    secret.chmod(0o600)
    yield made
    shutil.rmtree(top, ignore_errors=True)
    Path(tmp_mark(hub)).unlink(missing_ok=True)  # left only where a build outlives itself


def in_background(target, *args):
    """Run ``target(*args)`` in a thread; a function returning its result when it ends."""
    box: dict = {}

    def run():
        try:
            box["result"] = target(*args)
        except BaseException as error:  # re-raised in the test's thread
            box["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def result(timeout: float = 240):
        thread.join(timeout)
        assert not thread.is_alive(), "still running"
        if "error" in box:
            raise box["error"]
        return box["result"]

    return result


def wait_until(condition, timeout: float, what: str, seen=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s: {list(seen)[-5:]}"
        time.sleep(0.1)


def sealed_env(hub, events) -> Path:
    built = next(e for e in events if e["phase"] == "built")
    return hub_env_root(hub) / built["environment"]


# --- finding 1 and 4: a planted build, and the launcher's server at work meanwhile ----

PLANTED_POST_BUILD = """#!/bin/sh
printf '#!/bin/sh\\necho owned\\n' > "$VIRTUAL_ENV/h14suid"
chmod 4755 "$VIRTUAL_ENV/h14suid"
ln "$VIRTUAL_ENV/h14suid" "$VIRTUAL_ENV/h14suid-again"
ln -s ROOT_ONLY/h14-owned "$VIRTUAL_ENV/.h14suid.pangeohub-copy"
ln -s ROOT_ONLY/h14-owned-again "$VIRTUAL_ENV/.h14suid-again.pangeohub-copy"
echo "h14 runs as uid $(id -u)"
ls LAUNCHER_HOME >/dev/null 2>&1 && echo "h14 listed the launcher's home" || echo "h14 home closed"
grep -ls JUPYTERHUB_API_TOKEN /proc/[0-9]*/environ | sed 's/^/h14 token readable: /'
grep NoNewPrivs /proc/self/status | sed 's/^/h14 /'
echo "h14 processes in view: $(ls -d /proc/[0-9]* | wc -l)"
seen=$(find /sys/fs/cgroup -maxdepth 6 -name 'jupyter-*' 2>/dev/null | wc -l)
[ "$seen" -gt 0 ] && echo "h14 cgroups in view" || echo "h14 no cgroups in view"
touch TMP_MARK && echo "h14 left TMP_MARK"
echo "h14 waiting for the gate"
i=0; while [ ! -e GATE/open ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done
echo "h14 gate passed"
"""

# Eve's own code in her server: find the build under way (from /proc where she can see
# it, and from KNOWN_BUILDS: where the test, as root, saw it, as if she had guessed it),
# put a .pth in its environment.
PLANT_PTH = r"""
import json, os, sys
site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
bases, planted, refused = set(), [], []
for build in KNOWN_BUILDS:
    bases.update({build, build + "/work"})
for pid in os.listdir("/proc"):
    if not pid.isdigit():
        continue
    paths = []
    try:
        paths.append(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        pass
    try:
        paths += [a.decode() for a in open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")]
    except OSError:
        pass
    for path in paths:
        if "/binder/building/" in path:
            head, tail = path.split("/binder/building/", 1)
            build = f"{head}/binder/building/{tail.split('/')[0]}"
            bases.update({build, build + "/work"})
for base in sorted(bases):
    target = f"{base}/env/{site}/h14evil.pth"
    try:
        with open(target, "w") as f:
            f.write("import os; os.environ['H14_PWNED'] = 'by h14eve'\n")
        planted.append(target)
    except OSError as error:
        refused.append(f"{target}: {type(error).__name__}")
print(json.dumps({"found": sorted(bases), "planted": planted, "refused": refused}))
"""


def builds_under_way(hub) -> list[str]:
    """The build directories under way, as root sees them (none before the hub's first
    build has made ``building/``)."""
    building = hub_env_root(hub).parent / "building"
    if not building.is_dir():
        return []
    return sorted(str(p) for p in building.iterdir() if not p.name.startswith("."))


def tmp_mark(hub) -> str:
    """What the planted build leaves in the machine's shared /tmp."""
    return f"/tmp/h14-left-by-a-build-{hub_id(hub.state_dir)}"


def said(events, text: str) -> bool:
    return any(text in e.get("message", "") for e in events)


@pytest.fixture(scope="module")
def planted(hub, repos, eve, places):
    """Eve launches a repository whose postBuild plants links and set-id hard links
    (finding 1) and waits; meanwhile her server tries to change the build (finding 4)."""
    post_build = (
        PLANTED_POST_BUILD.replace("ROOT_ONLY", str(places["root-only"]))
        .replace("LAUNCHER_HOME", str(hub.server_home(EVE, "")))
        .replace("GATE", str(places["gate"]))
        .replace("TMP_MARK", tmp_mark(hub))
    )
    repos.publish("h14atk", "planted", {"binder/postBuild": post_build})
    seen: list[dict] = []
    result = in_background(launch, hub, eve, "gh/h14atk/planted/main", "", 240, seen)
    try:
        wait_until(lambda: said(seen, "h14 waiting for the gate"), 120, "build at gate", seen)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{hub.log_tail(40)}") from None
    known = repr(builds_under_way(hub))
    ran = run_in(hub, eve, EVE, "", PLANT_PTH.replace("KNOWN_BUILDS", known))
    attack = json.loads(ran.splitlines()[-1])
    (places["gate"] / "open").touch()
    status, events = result()
    assert status == 200, events
    assert events[-1]["phase"] == "ready", events[-1]
    return attack, events


def test_a_build_cannot_get_root_to_write_outside_it_or_keep_set_id_bits(hub, planted, places):
    """Finding 1: set-id hard links and links planted where the old sealing copied to."""
    _, events = planted
    assert os.listdir(places["root-only"]) == [], "root wrote where the build's links led"
    env = sealed_env(hub, events) / "env"
    for name in ("h14suid", "h14suid-again"):
        info = os.lstat(env / name)
        assert stat.S_ISREG(info.st_mode) and info.st_uid == 0 and info.st_nlink == 1
        assert stat.S_IMODE(info.st_mode) == 0o755, oct(info.st_mode)
    set_id = [
        os.path.join(top, name)
        for top, dirs, files in os.walk(env)
        for name in files
        if os.lstat(os.path.join(top, name)).st_mode & (stat.S_ISUID | stat.S_ISGID)
    ]
    assert set_id == []


def test_the_launchers_server_cannot_change_what_others_will_run(hub, planted):
    """Finding 4: the first launcher's server adds a .pth to the build under way."""
    attack, events = planted
    assert attack["found"], "the attacker never learnt where the build is: no attack made"
    assert attack["planted"] == [] and attack["refused"], attack
    env = sealed_env(hub, events)
    assert not list(env.glob("env/lib/python*/site-packages/h14evil.pth"))
    python = env / "env" / "bin" / "python"
    code = "import os; print(os.environ.get('H14_PWNED'))"
    ran = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "None"


def test_a_build_runs_as_no_person_and_reaches_none_of_the_launchers_things(hub, planted):
    """Finding 7's second half: the build's code is not the launcher's."""
    _, events = planted
    log = [e["message"] for e in events if e["phase"] == "log"]
    # a build slot's account, which no person's process uses: not the launcher's
    uid = next(int(line.rsplit(" ", 1)[1]) for line in log if "runs as uid" in line)
    assert pwd.getpwuid(uid).pw_gecos == BUILD_ACCOUNT_COMMENT, (uid, log)
    assert "h14 home closed" in log, log
    assert not [line for line in log if line.startswith("h14 token readable")], log
    # no set-id program gives it more (crontab, at, su: nothing to wait for a later build)
    assert "h14 NoNewPrivs:\t1" in log, log
    # its own processes only (its sandbox's PID namespace), no one's cgroups (whose names
    # say who runs which cluster)
    in_view = next(int(line.rsplit(" ", 1)[1]) for line in log if "processes in view" in line)
    assert in_view < 20, log
    assert "h14 no cgroups in view" in log, log
    # and what it left in the shared /tmp is gone with it
    assert f"h14 left {tmp_mark(hub)}" in log
    assert not os.path.lexists(tmp_mark(hub))


# --- finding 6: root reads the checkout's files for the person -----------------------

# Eve's code: learn where her build checks out (the clone's command line where she can
# see it, or HINTS: where the test, as root, saw the build, as if she had guessed it);
# where she sees the clone, wait for its `git checkout` to end, else (hinted) until the
# checkout's HEAD names the commit (git checkout's last write: git names the checkout's
# files by their full path, so a swap any earlier breaks the build instead) or until she
# finds the build closed to her; then swap the checkout for a link to someone else's
# files, again and again until told to stop: the hub would then read the recipe through
# the link.
SWAP_CHECKOUT = r"""
import json, os, time
victim, stop, hints = H14_VICTIM, H14_STOP, H14_HINTS
deadline = time.monotonic() + 120
report = {"seen": None, "swapped": False, "errors": []}
open("h14-watching", "w").close()  # in her home: the test launches once she watches


def processes():
    for pid in os.listdir("/proc"):
        try:
            yield pid, open(f"/proc/{pid}/cmdline", "rb").read().decode().split("\0")
        except OSError:
            pass


def ended(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def checked_out(repo):
    try:
        with open(f"{repo}/.git/HEAD") as f:
            head = f.read().strip()
    except PermissionError:  # closed to her: try the swap (to be refused)
        return True
    except OSError:
        return False
    return len(head) == 40 and not head.startswith("ref:")  # detached at the commit


def going_on():
    return time.monotonic() < deadline and not os.path.exists(stop)


def hinted():
    try:
        with open(hints) as f:
            return [line.strip() + "/work/repo" for line in f if line.strip()]
    except OSError:
        return []


checkout, in_view = None, False
while going_on() and not report["seen"]:
    for pid, args in processes():
        if "clone" in args and args[-2].endswith("/repo") and "/binder/building/" in args[-2]:
            report["seen"], in_view = args[-2], True
    report["seen"] = report["seen"] or next(iter(hinted()), None)
    time.sleep(0.01)
while in_view and going_on() and checkout is None:
    for pid, args in processes():
        if args[0].endswith("git") and "checkout" in args:
            checkout = pid
while checkout and not ended(checkout):
    pass
repo = report["seen"]
while repo and not in_view and going_on() and not checked_out(repo):
    pass
while repo and going_on() and not report["swapped"]:
    try:
        os.rename(repo, repo + ".h14")
        os.symlink(victim, repo)
        report["swapped"] = True
    except OSError as error:
        if type(error).__name__ not in report["errors"]:
            report["errors"].append(type(error).__name__)
        time.sleep(0.01)
print(json.dumps(report))
"""


def hint_builds(hub, hints: Path, stop: Path) -> None:
    """As root, write where builds are under way into ``hints`` until ``stop`` exists."""
    deadline = time.monotonic() + 180
    while not stop.exists() and time.monotonic() < deadline:
        known = builds_under_way(hub)
        if known:
            hints.write_text("".join(f"{b}\n" for b in known))
            os.chmod(hints, 0o644)
        time.sleep(0.05)


def test_root_never_reads_the_checkout_for_the_person(hub, repos, eve, places):
    """Finding 6: swap the checkout for a link between checkout and recipe reading."""
    repos.publish(
        "h14atk",
        "readsfor",
        # a big file makes the checkout last long enough to be seen; runtime.txt fails
        # the build honestly (no server) when nothing is swapped
        {"runtime.txt": "python-2.7\n", "big.bin": os.urandom(16 * 2**20)},
    )
    stop = hub.server_home(EVE, "") / "h14-stop-swapping"  # hers to see, whatever she sees
    hints = hub.server_home(EVE, "") / "h14-builds"
    code = SWAP_CHECKOUT.replace("H14_VICTIM", repr(str(places["victim"])))
    code = code.replace("H14_STOP", repr(str(stop))).replace("H14_HINTS", repr(str(hints)))
    swapping = in_background(run_in, hub, eve, EVE, "", code)
    hinting = in_background(hint_builds, hub, hints, stop)
    watching = hub.server_home(EVE, "") / "h14-watching"
    wait_until(watching.exists, 60, "attacker watching")
    try:
        status, events = launch(hub, eve, "gh/h14atk/readsfor/main")
    finally:
        stop.touch()
    hinting()
    report = json.loads(swapping().splitlines()[-1])
    assert status == 200, events
    everything = json.dumps(events)
    assert "h14-secret" not in everything, "root read another person's file for the build"
    assert events[-1]["phase"] == "failed" and "asks for Python 2.7" in events[-1]["message"]
    assert report["seen"], "the attacker never learnt where the checkout is: no attack made"
    assert report["swapped"] is False and report["errors"], report


# --- finding 7: a launch asks first ------------------------------------------------


def test_a_launch_link_asks_before_it_builds_and_only_a_confirmed_post_builds(
    hub, repos, eve, planted
):
    spec = "gh/h14atk/planted/main"  # not trusted; built, and its server runs (no wait)
    # Any page can send a signed-in person to the link: it shows what, from where, and asks.
    page = eve.get(f"{hub.url}/hub/v2/{spec}?urlpath=lab", timeout=30)
    assert page.status_code == 200
    assert "binder-confirm-button" in page.text and f"{repos.url}/h14atk/planted" in page.text
    assert stream_url(page.text) is None, "the page would start the build itself"
    # ... or straight to the build API, as a top-level navigation (no XSRF check there)
    navigate = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site"}
    status, body = follow(f"{hub.url}/hub/api/binder/build/{spec}", session=eve, headers=navigate)
    assert status == 403 and "not confirmed" in body["message"], body
    # ... or make the browser post the confirmation without the hub's XSRF token
    forged = eve.post(f"{hub.url}/hub/v2/{spec}", data={}, timeout=30)
    assert forged.status_code == 403
    # A ticket is for one repository: another page's ticket does not build this one.
    trusted = eve.get(f"{hub.url}/hub/v2/gh/h14trusted/anything/main", timeout=30)
    other = stream_url(trusted.text)
    assert other and "launch_token=" in other, "a trusted repository's link builds at once"
    ticket = other.split("launch_token=", 1)[1].split("&", 1)[0]
    elsewhere = f"{hub.url}/hub/api/binder/build/{spec}?launch_token={ticket}"
    status, body = follow(elsewhere, session=eve)
    assert status == 403, body
    # The person's confirmation (a POST with the hub's XSRF token) is what builds.
    confirmed = confirm(hub, eve, spec, "?urlpath=lab")
    assert confirmed.status_code == 200
    stream = stream_url(confirmed.text)
    assert stream and "launch_token=" in stream
    status, events = follow(f"{hub.url}{stream}", session=eve)
    assert status == 200 and events[-1]["phase"] == "ready", events[-1]


# --- finding 11 (builds): a bound per build, held by the kernel --------------------

FILLER_POST_BUILD = """#!/bin/sh
if head -c 1073741824 /dev/zero > "$VIRTUAL_ENV/h14-blob"; then
  echo "h14 wrote all of it"; exit 0
fi
echo "h14 wrote $(wc -c < "$VIRTUAL_ENV/h14-blob") bytes"; exit 1
"""


def test_a_build_is_stopped_at_its_disk_size_with_a_message(hub, repos, eve):
    repos.publish("h14atk", "filler", {"binder/postBuild": FILLER_POST_BUILD})
    status, events = launch(hub, eve, "gh/h14atk/filler/main")
    assert status == 200
    failed = events[-1]
    assert failed["phase"] == "failed", failed
    log = failed["log"]
    assert "h14 wrote all of it" not in log, "a build wrote 1 GiB on a 256 MiB limit"
    (wrote,) = [int(line.split()[2]) for line in log if line.startswith("h14 wrote ")]
    assert wrote <= BUILD_DISK
    assert "Running binder/postBuild ran out of disk space" in failed["message"]
    assert f"{BUILD_DISK // 2**20} MiB (c.BinderBuilder.max_size)" in failed["message"]
    assert not os.listdir(hub_env_root(hub).parent / "building")


def test_the_api_needs_a_token_that_may_start_servers(hub, eve):
    """The programmatic path: a token without the ``servers`` scope is refused."""
    token = hub.api(
        eve, "post", f"/users/{EVE}/tokens", json={"scopes": [f"read:users!user={EVE}"]}
    )
    headers = {"Authorization": f"token {token.json()['token']}"}
    response = requests.get(
        f"{hub.url}/hub/api/binder/build/gh/h14atk/planted/main", headers=headers, timeout=30
    )
    assert response.status_code == 403
