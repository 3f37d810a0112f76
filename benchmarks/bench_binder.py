"""Launch links against a plain server start on the same hub, in one run, as ratios.

One real hub (jupyterhub + configurable-http-proxy, the bundle's defaults, as root when
run as root) and a Git repository served on loopback (requirements.txt with a local wheel,
postBuild, start). Each round, three people:

- *plain*: starts a named server through the REST API (the baseline);
- *first launch*: launches a new commit (resolve, build with uv, start);
- *relaunch*: another person launches the same commit (environment reused, start).

Medians are printed with the ratios first launch / plain and relaunch / plain.

    sudo .venv/bin/python benchmarks/bench_binder.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402, F401 (the local proxy on PATH)
from tests.binder.gitrepo import ServedRepos, make_wheel  # noqa: E402
from tests.binder.test_binder_launch import REPO_FILES  # noqa: E402
from tests.hubprocess import HubProcess  # noqa: E402
from tests.isolation_cleanup import pangeohub_accounts, remove_accounts  # noqa: E402


def timed_launch(hub: HubProcess, who: str, spec: str) -> tuple[float, float]:
    """Follow a launch's stream with the person's API token (the programmatic path, no
    confirmation page): (seconds until the environment was there, until ready)."""
    session = hub.login(who)
    token = hub.api(session, "post", f"/users/{who}/tokens", json={}).json()["token"]
    started = time.monotonic()
    built = None
    url = f"{hub.url}/hub/api/binder/build/{spec}"
    headers = {"Authorization": f"token {token}"}
    with requests.get(url, stream=True, timeout=300, headers=headers) as response:
        assert response.status_code == 200, response.text
        for line in response.iter_lines(decode_unicode=True):
            if not line or not line.startswith("data: "):
                continue
            event = json.loads(line[len("data: ") :])
            if event["phase"] == "built":
                built = time.monotonic() - started
            if event["phase"] in ("ready", "failed"):
                assert event["phase"] == "ready", event
                return built, time.monotonic() - started
    raise AssertionError("the stream ended without ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    before = pangeohub_accounts()
    people = [f"benchb{i}{role}" for i in range(args.rounds) for role in "pfr"]
    work = Path(tempfile.mkdtemp(prefix="bench-binder-"))
    work.chmod(0o755)
    repos = ServedRepos(work / "served")
    wheels = work / "wheels"
    make_wheel(wheels, "h14tinypkg", "1.0", "VALUE = 1\n")
    config = f"""
        c.LocalGroupsAuthenticator.users = {{n: {{"groups": []}} for n in {people!r}}}
        c.BinderLauncher.github_url = {repos.url!r}
        c.BinderBuilder.find_links = [{str(wheels)!r}]
        c.BinderBuilder.offline = True
    """
    hub = HubProcess(work / "hub", extra_config=config)
    times: dict[str, list[float]] = {
        "plain": [],
        "first launch": [],
        "  of it, build": [],
        "relaunch": [],
        "  of it, reuse": [],
    }
    try:
        hub.start()
        for i in range(args.rounds):
            plain, first, again = (f"benchb{i}{r}" for r in "pfr")
            session = hub.login(plain)
            started = time.monotonic()
            hub.api(session, "post", f"/users/{plain}/servers/plain", json={})
            hub.wait_for_server(session, plain, "plain", timeout=120)
            times["plain"].append(time.monotonic() - started)
            repos.publish("benchorg", "demo", {**REPO_FILES, "round.txt": str(i)})
            for who, key, part in (
                (first, "first launch", "  of it, build"),
                (again, "relaunch", "  of it, reuse"),
            ):
                built, ready = timed_launch(hub, who, "gh/benchorg/demo/main")
                times[key].append(ready)
                times[part].append(built)
    finally:
        hub.stop()
        repos.stop()
        shutil.rmtree(work, ignore_errors=True)
        remove_accounts(pangeohub_accounts() - before)
    medians = {k: statistics.median(v) for k, v in times.items()}
    for key, value in medians.items():
        print(f"{key:>13}: median {value:5.2f} s over {len(times[key])} rounds")
    print(f"first launch / plain: {medians['first launch'] / medians['plain']:.2f}")
    print(f"relaunch / plain:     {medians['relaunch'] / medians['plain']:.2f}")


if __name__ == "__main__":
    main()
