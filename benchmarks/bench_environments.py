"""The default environment: its first build, a rebuild, and spawn-to-ready in it.

- *first build*: the bundle's ``pangeo`` environment into an empty directory with an empty
  uv cache (everything downloaded, as on a fresh machine);
- *rebuild*: the same environment after a package is added (a new version; uv's cache
  holds everything else), as ``pangeohub-environments add`` does;
- *spawn-to-ready*: one real hub (the bundle's defaults, as root when run as root) whose
  servers run the hub's own virtual environment (the baseline, today's behaviour before
  environments), and one whose servers run the built ``pangeo`` environment; each round
  starts a server on each, through the REST API, until the hub reports it ready.

Medians are printed with the ratios rebuild / first build and environment / hub venv.

    sudo .venv/bin/python benchmarks/bench_environments.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402, F401 (the local proxy on PATH)
from pangeohub.environments import Environments  # noqa: E402
from pangeohub.environments.build import Builder  # noqa: E402
from tests.hubprocess import HubProcess  # noqa: E402
from tests.isolation_cleanup import pangeohub_accounts, remove_accounts  # noqa: E402


def build_times(work: Path) -> tuple[float, float, int]:
    """(first build, rebuild after adding a package, packages) in a fresh root and cache."""
    from traitlets.config import Config

    c = Config()
    c.Environments.enabled = True
    c.Environments.root = str(work / "environments")
    c.Environments.added_dir = str(work / "added")
    c.Environments.cache_dir = str(work / "uv-cache")
    settings = Environments(config=c)
    builder = Builder(settings)
    started = time.monotonic()
    first = asyncio.run(builder.ensure("pangeo"))
    first_seconds = time.monotonic() - started
    added = Path(settings.added_dir) / "pangeo.txt"
    added.parent.mkdir(parents=True)
    added.write_text("xarray-regrid\n")
    started = time.monotonic()
    asyncio.run(builder.ensure("pangeo"))
    return first_seconds, time.monotonic() - started, len(first.packages)


def timed_start(hub: HubProcess, session, user: str, server: str) -> float:
    started = time.monotonic()
    response = hub.api(session, "post", f"/users/{user}/servers/{server}", json={})
    assert response.status_code in (201, 202), response.text
    hub.wait_for_server(session, user, server, timeout=300)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    before = pangeohub_accounts()
    work = Path(tempfile.mkdtemp(prefix="pangeohub-bench-environments-"))
    hubs: list[HubProcess] = []
    try:
        first, rebuild, packages = build_times(work / "builds")
        print(f"first build of pangeo ({packages} packages, empty cache): {first:.1f} s")
        print(f"rebuild after adding a package: {rebuild:.1f} s")
        print(f"ratio rebuild / first build: {rebuild / first:.2f}")
        unlimited = "c.PangeoPolicy.named_server_limit = 0\n"
        venv_hub = HubProcess(work / "venv-hub", unlimited + "c.Environments.enabled = False")
        env_hub = HubProcess(work / "env-hub", unlimited + "c.Environments.enabled = True")
        hubs = [venv_hub.start(), env_hub.start()]
        sessions = [hub.login("grace") for hub in hubs]
        # The environment hub's first start builds pangeo (the cache is warm now): not timed.
        timed_start(env_hub, sessions[1], "grace", "warmup")
        times: dict[str, list[float]] = {"hub venv": [], "environment": []}
        for round_ in range(args.rounds):
            for label, hub, session in zip(times, hubs, sessions, strict=True):
                times[label].append(timed_start(hub, session, "grace", f"r{round_}"))
        medians = {label: statistics.median(values) for label, values in times.items()}
        for label, value in medians.items():
            print(f"spawn-to-ready, {label}: median {value:.2f} s of {times[label]}")
        print(f"ratio environment / hub venv: {medians['environment'] / medians['hub venv']:.2f}")
    finally:
        for hub in hubs:
            hub.stop()
        remove_accounts(pangeohub_accounts() - before)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
