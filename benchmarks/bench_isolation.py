"""Spawn-to-ready with isolation (account, cgroup, disk image) against the same hub
without it, in one run, as ratios.

Two real hubs (jupyterhub + configurable-http-proxy, the bundle's defaults) run side by
side as root: one isolated (the default), one with ``c.Isolation.enabled = False``.
Each round a fresh person starts their first server (the isolated hub makes their
account and their 2 GiB disk) and, after stopping it, starts it again (account and
disk reused, disk mounted again). Rounds alternate between the hubs; medians are
printed with the ratio isolated / shared.

    sudo .venv/bin/python benchmarks/bench_isolation.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.hubprocess import HubProcess  # noqa: E402
from tests.isolation_cleanup import pangeohub_accounts, remove_accounts  # noqa: E402


def users_config(rounds: int) -> str:
    people = {f"bench{i}": {"groups": []} for i in range(rounds)}
    return f"c.LocalGroupsAuthenticator.users = {people!r}\n"


def spawn_to_ready(hub: HubProcess, session, user: str) -> float:
    started = time.monotonic()
    response = hub.api(session, "post", f"/users/{user}/server", json={})
    assert response.status_code in (201, 202), response.text
    hub.wait_for_server(session, user, "", timeout=120)
    return time.monotonic() - started


def stop(hub: HubProcess, session, user: str) -> None:
    hub.api(session, "delete", f"/users/{user}/server")
    hub.wait_for_stop(session, user, "", timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("Run as root: isolation only happens when the hub is root.")
    before = pangeohub_accounts()
    config = users_config(args.rounds)
    with tempfile.TemporaryDirectory() as work:
        hubs = {
            "isolated": HubProcess(Path(work) / "isolated", extra_config=config),
            "shared": HubProcess(
                Path(work) / "shared", extra_config=config + "c.Isolation.enabled = False\n"
            ),
        }
        times: dict[str, dict[str, list[float]]] = {k: {"first": [], "later": []} for k in hubs}
        try:
            for hub in hubs.values():
                hub.start()
            for i in range(args.rounds):
                user = f"bench{i}"
                for kind, hub in hubs.items():
                    session = hub.login(user)
                    times[kind]["first"].append(spawn_to_ready(hub, session, user))
                    stop(hub, session, user)
                    times[kind]["later"].append(spawn_to_ready(hub, session, user))
                    stop(hub, session, user)
        finally:
            for hub in hubs.values():
                hub.stop()
            remove_accounts(pangeohub_accounts() - before)
    print(f"spawn-to-ready, median of {args.rounds} rounds (seconds)")
    print(f"{'start':<8}{'isolated':>10}{'shared':>10}{'ratio':>8}")
    for start in ("first", "later"):
        iso = statistics.median(times["isolated"][start])
        shared = statistics.median(times["shared"][start])
        print(f"{start:<8}{iso:>10.2f}{shared:>10.2f}{iso / shared:>8.2f}")


if __name__ == "__main__":
    main()
