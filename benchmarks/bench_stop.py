"""Ctrl-C: how long the hub takes to stop, with a person's server and (pangeohub) a Dask
cluster running, against a plain JupyterHub stopping with one server.

- *plain*: JupyterHub with the dummy authenticator and the simple local spawner, one
  user's server running (the baseline: what stopping a hub costs anyway);
- *pangeohub*: the bundle's hub (``make run``'s defaults; as root, people's own accounts,
  sandboxes, disks and cgroups) with grace's server and one Dask Gateway cluster of hers
  running, which the hub stops before its services.

Each round starts a fresh hub, waits until the server (and cluster) run, sends SIGINT to
the hub's process group, as Ctrl-C in its terminal does, and times until the hub's
process has exited. Medians are printed with the ratio pangeohub / plain.

    sudo .venv/bin/python benchmarks/bench_stop.py --rounds 3
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import tests.conftest  # noqa: E402, F401 (the local proxy on PATH)
from tests.dask_clients import closing, new_gateway  # noqa: E402
from tests.hubprocess import HubProcess  # noqa: E402
from tests.isolation_cleanup import clean_hub  # noqa: E402

TOKEN = secrets.token_hex(16)
BENCH_SERVICE = f"""
c.JupyterHub.services.append({{"name": "bench", "api_token": {TOKEN!r}}})
c.JupyterHub.load_roles.append(
    {{"name": "bench", "scopes": ["admin:users", "admin:servers", "tokens"],
      "services": ["bench"]}}
)
"""
PLAIN_CONFIG = f"""
import os
c = get_config()  # noqa
c.JupyterHub.bind_url = f"http://127.0.0.1:{{os.environ['PANGEOHUB_PORT']}}"
c.JupyterHub.hub_port = int(os.environ["PANGEOHUB_HUB_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{{os.environ['PANGEOHUB_PROXY_API_PORT']}}"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.Spawner.args = ["--allow-root"] if os.geteuid() == 0 else []
c.JupyterHub.services = []
c.JupyterHub.load_roles = []
{BENCH_SERVICE}
"""


def api(hub: HubProcess, method: str, path: str, **kwargs) -> requests.Response:
    headers = {"Authorization": f"token {TOKEN}"}
    return requests.request(
        method, f"{hub.url}/hub/api{path}", headers=headers, timeout=30, **kwargs
    )


def start_server(hub: HubProcess, user: str, timeout: float = 120) -> None:
    api(hub, "post", "/users", json={"usernames": [user]})  # 409 if the user exists
    started = api(hub, "post", f"/users/{user}/server", json={})
    assert started.status_code in (201, 202), started.text
    deadline = time.monotonic() + timeout
    while not api(hub, "get", f"/users/{user}").json()["servers"].get("", {}).get("ready"):
        assert time.monotonic() < deadline, f"{user}'s server did not start:\n{hub.log_tail()}"
        time.sleep(0.2)


def start_cluster(hub: HubProcess, user: str, timeout: float = 120) -> None:
    from dask_gateway.auth import JupyterHubAuth

    token = api(hub, "post", f"/users/{user}/tokens", json={"expires_in": 600}).json()["token"]
    auth = JupyterHubAuth(api_token=token)
    with closing(new_gateway(address=f"{hub.url}/services/dask-gateway", auth=auth)) as gateway:
        options = gateway.cluster_options()
        options.server = "/"
        name = gateway.submit(cluster_options=options)
        deadline = time.monotonic() + timeout
        while gateway.get_cluster(name).status.name != "RUNNING":
            assert time.monotonic() < deadline, f"the cluster did not start:\n{hub.log_tail()}"
            time.sleep(0.2)


def ctrl_c(hub: HubProcess, timeout: float = 120) -> float:
    """SIGINT to the hub's process group; seconds until its process has exited."""
    began = time.monotonic()
    os.killpg(hub.proc.pid, signal.SIGINT)
    hub.proc.wait(timeout)
    return time.monotonic() - began


def round_plain(work: Path) -> float:
    work.mkdir(parents=True, exist_ok=True)
    config = work / "plain_config.py"
    config.write_text(textwrap.dedent(PLAIN_CONFIG))
    hub = HubProcess(work / "plain", config_file=config).start()
    try:
        start_server(hub, "plain-user")
        return ctrl_c(hub)
    finally:
        hub.stop()


def round_pangeohub(work: Path) -> float:
    hub = HubProcess(work / "pangeohub", extra_config=BENCH_SERVICE).start()
    try:
        start_server(hub, "grace")
        start_cluster(hub, "grace")
        return ctrl_c(hub)
    finally:
        hub.stop()
        clean_hub(hub.state_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"plain": [], "pangeohub": []}
    with tempfile.TemporaryDirectory(prefix="bench-stop-") as tmp:
        for n in range(args.rounds):
            work = Path(tmp) / str(n)
            times["plain"].append(round_plain(work))
            times["pangeohub"].append(round_pangeohub(work))
            print(f"round {n + 1}: plain {times['plain'][-1]:.2f} s, "
                  f"pangeohub {times['pangeohub'][-1]:.2f} s", flush=True)  # fmt: skip
    plain, ours = statistics.median(times["plain"]), statistics.median(times["pangeohub"])
    print(f"Ctrl-C to exit, plain JupyterHub with one server: median {plain:.2f} s")
    print(f"Ctrl-C to exit, pangeohub with a server and a Dask cluster: median {ours:.2f} s")
    print(f"ratio pangeohub / plain: {ours / plain:.2f}")


if __name__ == "__main__":
    main()
