"""The load test's harness, small (benchmarks/bench_scale.py with a few people), so it
cannot rot: people sign in, their servers start on light pods and answer through the
proxy, and every figure the benchmark reports is measured."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def test_a_few_people_sign_in_and_their_servers_run():
    import bench_scale

    runs = bench_scale.main(["--users", "4", "--rate", "4", "--only", "pangeo-kubernetes"])
    run = runs["pangeo-kubernetes", 4]
    assert run.failed == []
    assert run.running == 4, "every person's server is running at the end"
    assert len(run.spawn) == 4 and all(t > 0 for t in run.spawn)
    assert run.probes, "the hub API was probed during the load"
    assert run.cpu > 0 and run.rss_mib > 0 and run.cull_pass > 0
