"""Launch from a repository on one machine: the real hub, a Git repository served over
HTTP on loopback, uv installing from a local wheel (no external network).

The package's hub (conftest.py); people here are ``h14ann`` and ``h14bob`` (accounts
jupyter-h14*).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from pangeohub.isolation.disks import mounted_at
from tests.chromium import headless_chromium, sign_in

from .launching import BUILD_MEMORY, hub_env_root, launch, run_in

pytestmark = [pytest.mark.e2e]

TIMINGS: dict[str, float] = {}

REPO_FILES = {
    "binder/requirements.txt": "h14tinypkg==1.0\n",
    "binder/postBuild": (
        '#!/bin/sh\nset -e\necho "postBuild runs"\nid -un > "$VIRTUAL_ENV/built-by"\n'
    ),
    "binder/start": '#!/bin/sh\nexport H14_STARTED_AS="$(id -un)"\nexec "$@"\n',
    "index.ipynb": json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
    "README.md": "A repository launched by the tests.\n",
}


@pytest.fixture(scope="module")
def demo(repos):
    return repos.publish("h14org", "demo", REPO_FILES)


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as chromium:
        yield chromium


def test_a_launch_link_builds_and_lands_in_jupyterlab_at_the_path(hub, demo, browser, output_dir):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(90_000)
    started = time.monotonic()
    # Not signed in: the link signs the person in first, then comes back.
    page.goto(f"{hub.url}/hub/v2/gh/h14org/demo/main?labpath=index.ipynb")
    page.wait_for_selector("#username_input")
    sign_in(page, hub, "h14ann")
    # Not a trusted repository: the page says what would be built, and asks.
    page.wait_for_selector("#binder-confirm-button, #binder-bar")
    page.screenshot(path=output_dir / "launch-confirm.png", full_page=True)
    assert page.inner_text("#binder-confirm-url") == f"{hub.repos_url}/h14org/demo"
    assert page.inner_text("#binder-confirm-ref") == "main"
    page.click("#binder-confirm-button")
    page.wait_for_selector("#binder-log:has-text('postBuild runs'), #binder-failure:visible")
    page.screenshot(path=output_dir / "launch-progress.png", full_page=True)
    assert not page.is_visible("#binder-failure"), page.inner_text("#binder-launch")
    page.wait_for_url("**/user/h14ann/demo-*/lab/tree/index.ipynb", timeout=120_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    page.wait_for_selector(".jp-NotebookPanel", timeout=60_000)
    TIMINGS["first launch (build + start, browser)"] = time.monotonic() - started
    page.screenshot(path=output_dir / "launched-jupyterlab.png")
    assert "index.ipynb" in page.title() or "JupyterLab" in page.title()
    page.close()

    server = f"demo-{demo[:7]}"
    session = hub.login("h14ann")
    checks = run_in(
        hub,
        session,
        "h14ann",
        server,
        "import h14tinypkg, json, os, pwd, sys\n"
        "print(json.dumps({'value': h14tinypkg.VALUE, 'me': pwd.getpwuid(os.getuid()).pw_name,"
        " 'start': os.environ.get('H14_STARTED_AS'), 'prefix': sys.prefix,"
        " 'built_by': open(os.environ['VIRTUAL_ENV'] + '/built-by').read().strip(),"
        " 'scratch': os.environ.get('PANGEO_SCRATCH'), 'home': os.getcwd(),"
        " 'files': sorted(os.listdir('.'))}))",
    )
    seen = json.loads(checks)
    assert seen["value"] == "only in the repository environment"
    assert seen["me"] == seen["start"] == "jupyter-h14ann"
    # built by no person: the hub's build account, never the launcher's
    assert seen["built_by"].startswith("pangeohub-build-") if hub.isolated else seen["built_by"]
    assert {"index.ipynb", "README.md", "binder"} <= set(seen["files"])
    # The hub's rules hold in a launched server: scratch, and its own disk as home.
    assert seen["scratch"], "a launched server has no scratch"
    if hub.isolated:
        assert mounted_at(seen["home"]), "a launched server's home is not its own disk"
    # The environment is shared: root's, readable by everyone, writable by nobody else.
    env = os.stat(seen["prefix"])
    assert env.st_uid == 0 and not env.st_mode & 0o022


DASK_CODE = """
from dask_gateway import GatewayCluster
with GatewayCluster() as cluster:
    client = cluster.get_client()
    cluster.scale(1)
    client.wait_for_workers(1, timeout=90)
    print(client.submit(lambda: __import__("h14tinypkg").VALUE).result(timeout=60))
"""


def test_dask_workers_of_a_launched_server_run_in_its_environment(hub, demo):
    session = hub.login("h14ann")
    started = time.monotonic()
    output = run_in(hub, session, "h14ann", f"demo-{demo[:7]}", DASK_CODE)
    TIMINGS["GatewayCluster() + 1 worker + a task"] = time.monotonic() - started
    assert output.splitlines()[-1] == "only in the repository environment"


def test_a_second_person_reuses_the_built_commit(hub, demo):
    session = hub.login("h14bob")
    started = time.monotonic()
    status, events = launch(hub, session, "gh/h14org/demo/main", "?urlpath=lab")
    TIMINGS["relaunch of a built commit (API, second person)"] = time.monotonic() - started
    assert status == 200, events
    phases = [e["phase"] for e in events]
    assert "fetching" not in phases and "log" not in phases, phases
    built = next(e for e in events if e["phase"] == "built")
    assert built["reused"] is True
    assert events[-1]["phase"] == "ready", events[-1]
    assert events[-1]["url"].endswith(f"/user/h14bob/demo-{demo[:7]}/lab")
    assert requests.get(hub.url + events[-1]["url"], timeout=30).status_code in (200, 302)


def test_the_spawn_page_launches_a_repository_typed_beside_the_profiles(
    hub, repos, demo, browser, output_dir
):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{hub.url}/hub/spawn")
    sign_in(page, hub, "h14bob")
    page.wait_for_selector("#binder-repository", timeout=30_000)
    # the profiles are still there (the picker renders them in the page's script)
    page.wait_for_selector("input[name=profile]", state="attached", timeout=30_000)
    page.fill("#binder-repository", f"{repos.url}/h14org/demo")
    page.fill("#binder-ref", "main")
    page.screenshot(path=output_dir / "spawn-page-launch-fields.png", full_page=True)
    page.click("#binder-launch-button")
    page.wait_for_url(f"**/user/h14bob/demo-{demo[:7]}/lab**", timeout=60_000)
    page.close()


def test_a_new_commit_builds_anew(hub, repos, demo):
    newer = repos.publish("h14org", "demo", {"README.md": "changed\n"})
    session = hub.login("h14bob")
    started = time.monotonic()
    status, events = launch(hub, session, "gh/h14org/demo/main")
    TIMINGS["launch of a new commit (API, rebuild + start)"] = time.monotonic() - started
    assert status == 200, events
    built = next(e for e in events if e["phase"] == "built")
    assert built["reused"] is False and newer[:12] in built["environment"]
    assert events[-1]["phase"] == "ready" and f"demo-{newer[:7]}" in events[-1]["url"]


def test_a_launched_server_started_again_from_the_spawn_page_keeps_its_environment(hub, demo):
    session = hub.login("h14bob")
    server = f"demo-{demo[:7]}"
    hub.api(session, "delete", f"/users/h14bob/servers/{server}")
    hub.wait_for_stop(session, "h14bob", server)
    response = session.post(
        f"{hub.url}/hub/spawn/h14bob/{server}",
        data={"profile": "small", "_xsrf": session.cookies.get("_xsrf", path="/hub/")},
        allow_redirects=False,
        timeout=60,
    )
    assert response.status_code in (200, 302), response.text[-500:]
    hub.wait_for_server(session, "h14bob", server, timeout=90)
    value = run_in(hub, session, "h14bob", server, "import h14tinypkg; print(h14tinypkg.VALUE)")
    assert value == "only in the repository environment"


def test_a_failing_build_shows_its_log_and_the_failing_line(hub, repos, browser, output_dir):
    repos.publish(
        "h14org", "demo", {"binder/requirements.txt": "h14missingpkg==9.9\n"}, branch="broken"
    )
    session = hub.login("h14ann")
    before = set(os.listdir(hub_env_root(hub)))
    status, events = launch(hub, session, "gh/h14org/demo/broken")
    assert status == 200
    failed = events[-1]
    assert failed["phase"] == "failed", failed
    assert "requirements.txt" in failed["message"] and "failed" in failed["message"]
    assert "h14missingpkg" in failed["line"]
    assert any("h14missingpkg" in line for line in failed["log"])
    assert set(os.listdir(hub_env_root(hub))) == before  # nothing half-built in use
    assert not os.listdir(hub_env_root(hub).parent / "building")
    servers = hub.api(session, "get", "/users/h14ann").json()["servers"]
    assert not [s for s in servers if "broken" in s]

    # The person sees the same on the launch page: what failed, why, and the log.
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{hub.url}/hub/v2/gh/h14org/demo/broken")
    sign_in(page, hub, "h14ann")
    page.click("#binder-confirm-button")
    page.wait_for_selector("#binder-failure:visible", timeout=60_000)
    page.screenshot(path=output_dir / "launch-failed.png", full_page=True)
    assert "requirements.txt" in page.inner_text("#binder-failure-message")
    assert "h14missingpkg" in page.inner_text("#binder-failure-line")
    assert "h14missingpkg" in page.inner_text("#binder-log")
    page.close()


HUNGRY_POST_BUILD = """#!/usr/bin/env python3
import os, sys, urllib.error, urllib.request

sys.stdout.reconfigure(line_buffering=True)  # the lines before the kill reach the log
print("environment:", " ".join(sorted(os.environ)))
for line in open("/proc/self/cgroup"):
    _, controllers, path = line.strip().split(":", 2)
    if controllers == "cpu":
        print("cpu quota:", open(f"/sys/fs/cgroup/cpu{path}/cpu.cfs_quota_us").read().strip())
    if controllers == "memory":
        limit = open(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read().strip()
        print("memory limit:", limit)
    if controllers == "" and path != "/":
        print("cpu quota:", open(f"/sys/fs/cgroup{path}/cpu.max").read().split()[0])
        print("memory limit:", open(f"/sys/fs/cgroup{path}/memory.max").read().strip())


class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None  # a redirect (to the sign-in page) is an answer


for name, url in [
    ("hub api", "HUB/hub/api/users"),
    ("scratch", "HUB/services/scratch/credentials"),
    ("gateway", "HUB/services/dask-gateway/api/v1/clusters/"),
    ("proxy api", "PROXY_API/api/routes"),
]:
    try:
        status = urllib.request.build_opener(Stay).open(url, timeout=10).status
    except urllib.error.HTTPError as error:
        status = error.code
    print(f"{name} answered: {status}")
import subprocess

left = subprocess.Popen(["sleep", "600"], start_new_session=True)  # not in the step's group
print("left running:", left.pid)
hoard = b"x" * (3 * BUILD_MEMORY)
print("allocated", len(hoard))
"""


def test_a_build_is_held_to_its_memory_and_cpu_and_gets_no_hub_credentials(hub, repos):
    from pangeohub.isolation.cgroups import cgroup_version
    from tests.isolation_cleanup import hub_id

    if not hub.isolated or cgroup_version() is None:
        pytest.skip("builds get a cgroup only as root on a machine with cgroups")
    post_build = (
        HUNGRY_POST_BUILD.replace("HUB", hub.url)
        .replace("PROXY_API", f"http://127.0.0.1:{hub.proxy_api_port}")
        .replace("BUILD_MEMORY", str(BUILD_MEMORY))
    )
    repos.publish("h14org", "hungry", {"binder/postBuild": post_build})
    cgroups = Path("/sys/fs/cgroup")
    ours = Path("pangeohub", hub_id(hub.state_dir), "binder-builds")
    tops = (cgroups / "memory", cgroups / "cpu") if cgroup_version() == 1 else (cgroups,)
    for top in tops:  # what a killed hub left: removed by the next build
        (top / ours / "h14-stale-build").mkdir(parents=True, exist_ok=True)
    session = hub.login("h14bob")
    status, events = launch(hub, session, "gh/h14org/hungry/main")
    assert status == 200
    failed = events[-1]
    assert failed["phase"] == "failed", failed
    assert "Running binder/postBuild ran out of memory" in failed["message"]
    assert f"{BUILD_MEMORY // 2**20} MiB (c.BinderBuilder.mem_limit)" in failed["message"]
    log = failed["log"]
    assert log, failed
    assert "allocated" not in " ".join(log)
    assert "cpu quota: 150000" in log  # 1.5 CPUs of 100 ms periods
    assert f"memory limit: {BUILD_MEMORY}" in log
    # The build runs with no hub credentials: nothing of the hub's environment, and the
    # hub's API answers it as anyone unauthenticated.
    (names,) = [line.split(": ", 1)[1].split() for line in log if line.startswith("environ")]
    leaked = [
        n
        for n in names
        if n.startswith(("JUPYTERHUB", "PANGEOHUB", "AWS_", "DASK_", "CONFIGPROXY"))
        or any(word in n for word in ("TOKEN", "SECRET", "PASSWORD", "KEY"))
    ]
    assert leaked == [], leaked
    answers = {
        line.split(" answered: ")[0]: line.split(": ")[1] for line in log if " answered: " in line
    }
    # the hub's API, the scratch credentials, the gateway, the proxy's API: all refuse it
    assert answers == {"hub api": "403", "scratch": "401", "gateway": "401", "proxy api": "403"}
    # Nothing left: no cgroup, no half-built environment, no server.
    left = [d for top in tops for d in (top / ours).glob("*") if d.is_dir()]
    assert left == []
    assert any(line.startswith("left running") for line in log), log
    # what the step left running is killed with it (found by what it runs: in a sandbox
    # the step sees its own process numbers, not the machine's)
    assert not build_processes_running(["sleep", "600"])
    assert not os.listdir(hub_env_root(hub).parent / "building")
    servers = hub.api(session, "get", "/users/h14bob").json()["servers"]
    assert not [s for s in servers if "hungry" in s]


def build_processes_running(argv: list[str]) -> list[int]:
    """The machine's processes of a build account running ``argv``."""
    import pwd

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            owner = pwd.getpwuid(entry.stat().st_uid).pw_name
        except (OSError, KeyError):
            continue
        if [a.decode() for a in args] == argv and owner.startswith("pangeohub-build-"):
            if running(int(entry.name)):
                found.append(int(entry.name))
    return found


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie is dead, only not yet reaped


@pytest.mark.parametrize(
    ("spec", "status", "says"),
    [
        ("gl/h14org/demo/main", 404, "Unknown repository provider"),
        ("gh/h14org/de mo!/main", 400, "not a GitHub organisation or repository name"),
        ("gh/h14org/demo", 400, "names no ref"),
        ("gh/h14org/demo/no-such-branch", 404, "has no branch or tag 'no-such-branch'"),
        ("gh/h14org/demo/bad..ref", 400, "is not a Git branch, tag or commit"),
        ("gh/h14org/nothing-here/main", 422, "could not be fetched"),
        (f"git/{quote('ftp://127.0.0.1/x.git', safe='')}/main", 400, "http(s) URL"),
        ("gh/h14org/demo/main?urlpath=https://evil.example/", 400, "not a path inside"),
    ],
)
def test_bad_input_is_a_4xx_with_a_message(hub, demo, spec, status, says):
    session = hub.login("h14bob")
    path, _, query = spec.partition("?")
    got, body = launch(hub, session, path, f"?{query}" if query else "")
    assert got == status, body
    assert says in body["message"], body


def test_timings_are_reported(hub):
    # Not an assertion on speed: what the report quotes (see the test log with -s).
    print("\nlaunch timings:", json.dumps({k: round(v, 1) for k, v in TIMINGS.items()}))
