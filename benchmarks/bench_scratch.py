"""Scratch credential service throughput: many distinct users on the cached path.

Starts the real hub (for token checks), moto's S3+STS on loopback, and the scratch
service in this process; issues one token per user, warms every user's credentials,
then measures credential requests per second and p50/p99 latency against a bare
tornado handler served and loaded the same way in the same run, and prints the ratio.

    .venv/bin/python benchmarks/bench_scratch.py --users 200 --requests 4000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(url_for, headers_for, total: int, concurrency: int) -> dict:
    """``total`` GETs with ``concurrency`` in flight; request i goes to user i % n."""
    from tornado.httpclient import AsyncHTTPClient

    client = AsyncHTTPClient(max_clients=concurrency)
    latencies: list[float] = []
    counter = iter(range(total))

    async def worker():
        for i in counter:
            start = time.perf_counter()
            response = await client.fetch(url_for(i), headers=headers_for(i), raise_error=False)
            latencies.append(time.perf_counter() - start)
            if response.code != 200:
                raise RuntimeError(f"request {i}: HTTP {response.code}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "rps": total / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


async def bare_server():
    """The baseline: a bare tornado handler answering a JSON body of similar size."""
    from tornado import httpserver, netutil, web

    body = json.dumps({"credentials": {"k" * 20: "v" * 600}, "url": "s3://b/p/u"})

    class Bare(web.RequestHandler):
        def get(self):
            self.set_header("Content-Type", "application/json")
            self.finish(body)

    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(web.Application([("/bare", Bare)]))
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[1]


async def main(args) -> None:
    import boto3
    from jupyterhub.services.auth import HubAuth
    from moto.server import ThreadedMotoServer
    from traitlets.config import Config

    from pangeohub.scratch.service import ScratchServiceApp
    from tests.hubprocess import HubProcess, free_port

    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    users = [f"user{i:04d}" for i in range(args.users)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-scratch-"))
    user_config = {u: {"groups": ["bench:users"]} for u in users}
    user_config["ada"] = {"admin": True, "groups": []}
    hub = HubProcess(workdir, extra_config=f"c.LocalGroupsAuthenticator.users = {user_config!r}")
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    app = None
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
        boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{moto_port}", region_name="us-east-1"
        ).create_bucket(Bucket="bench-scratch")
        hub.start(timeout=120)
        admin = hub.login("ada")
        tokens = []
        for user in users:
            response = hub.api(
                admin,
                "post",
                f"/users/{user}/tokens",
                json={"scopes": ["access:services!service=scratch"], "note": "bench"},
            )
            response.raise_for_status()
            tokens.append(response.json()["token"])
        config = Config()
        config.HubAuth.api_url = f"http://127.0.0.1:{hub.hub_port}/hub/api"
        config.HubAuth.api_token = "unused"
        config.HubAuth.access_scopes = {"access:services!service=scratch"}
        config.ScratchService.backend = "s3"
        config.ScratchService.url = "http://127.0.0.1:0"
        config.ScratchService.log_level = "WARN"
        config.S3ScratchBackend.bucket = "bench-scratch"
        config.S3ScratchBackend.role_arn = "arn:aws:iam::123456789012:role/bench"
        config.S3ScratchBackend.endpoint_url = f"http://127.0.0.1:{moto_port}"
        app = ScratchServiceApp(config=config)
        app.initialize([])
        app.hub_auth = HubAuth(parent=app)
        await app.start_async()
        scratch_url = f"http://127.0.0.1:{app.port}/services/scratch/credentials"
        n = len(users)

        def headers(i):
            return {"Authorization": f"token {tokens[i % n]}"}

        warm = await load(lambda i: scratch_url, headers, n, min(8, n))  # fills both caches
        bare, bare_port = await bare_server()
        bare_url = f"http://127.0.0.1:{bare_port}/bare"
        base = await load(lambda i: bare_url, headers, args.requests, args.concurrency)
        cached = await load(lambda i: scratch_url, headers, args.requests, args.concurrency)
        bare.stop()
        assert app.store.issued_count == n, "every user must have been issued once, then cached"
        print(f"users={n} requests={args.requests} concurrency={args.concurrency}")
        print(f"warm-up (hub check + STS, per user): {warm['rps']:.0f} req/s")
        for name, r in (("bare tornado", base), ("scratch cached", cached)):
            print(
                f"{name:>15}: {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                f"p99 {r['p99_ms']:6.2f} ms"
            )
        p50 = cached["p50_ms"] / base["p50_ms"]
        p99 = cached["p99_ms"] / base["p99_ms"]
        throughput = cached["rps"] / base["rps"]
        print(f"ratio scratch/bare: throughput {throughput:.2f}, p50 {p50:.2f}x, p99 {p99:.2f}x")
    finally:
        if app is not None:
            await app.stop_async()
        hub.stop()
        moto.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    asyncio.run(main(parser.parse_args()))
