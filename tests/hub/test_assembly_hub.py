"""One admin file configures the hub and every pangeohub service: the real hub is started
with settings for each service in its admin file, and each running service is seen using
them. (The culler's own settings are proven by tests/culling/test_culling_hub.py, which sets
c.CullingPolicy in the admin file and watches idle servers stop.)"""

from __future__ import annotations

import pytest
import requests

from tests.hubprocess import HubProcess
from tests.scratch.conftest import server_environment, user_token

pytestmark = pytest.mark.e2e


def admin_file(scratch_root) -> str:
    return f"""
c.LocalScratchBackend.root = {str(scratch_root)!r}
c.ScratchBackend.expiry_days = 3
c.GatewayPolicy.idle_timeout = {{"min": 1, "max": 7, "default": 7}}
c.GatewayPolicy.worker_cores = {{"min": 1, "max": 1, "default": 1}}
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("assembly")
    hub = HubProcess(workdir, extra_config=admin_file(workdir / "elsewhere"))
    hub.scratch_root = workdir / "elsewhere"
    hub.start()
    yield hub
    hub.stop()


def test_the_scratch_service_uses_the_admin_files_settings(hub):
    health = requests.get(f"{hub.url}/services/scratch/health", timeout=10).json()
    assert health == {"backend": "local", "expiry": "verified: 3 days"}
    assert hub.scratch_root.is_dir()  # the service made the admin's root, not the default
    grace = hub.login("grace")
    answer = requests.get(
        f"{hub.url}/services/scratch/credentials",
        headers={"Authorization": f"token {user_token(hub, grace, 'grace')}"},
        timeout=10,
    ).json()
    assert answer["url"] == f"file://{hub.scratch_root}/grace"


def test_servers_are_told_what_the_service_uses(hub):
    grace = hub.login("grace")
    assert hub.api(grace, "post", "/users/grace/server", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace")
    env = server_environment(hub, "grace")
    assert env["PANGEO_SCRATCH"] == f"file://{hub.scratch_root}/grace"
    assert env["PANGEO_SCRATCH_STATUS"] == "available"
    assert env["DASK_GATEWAY__ADDRESS"].endswith("/services/dask-gateway")
    assert not [name for name in env if name.startswith("PANGEOHUB_") and "TEST" not in name]
    hub.api(grace, "delete", "/users/grace/server")
    hub.wait_for_stop(grace, "grace")


def test_the_gateway_uses_the_admin_files_bounds(hub):
    grace = hub.login("grace")
    options = requests.get(
        f"{hub.url}/services/dask-gateway/api/v1/options",
        headers={"Authorization": f"jupyterhub {user_token(hub, grace, 'grace')}"},
        timeout=30,
    )
    assert options.status_code == 200, options.text
    fields = {f["field"]: f for f in options.json()["cluster_options"]}
    assert fields["idle_timeout"]["spec"]["max"] == 7 and fields["idle_timeout"]["default"] == 7
    assert fields["worker_cores"]["spec"]["max"] == 1


def test_a_part_switched_off_is_gone_from_the_hub_and_its_servers(tmp_path):
    config = "c.GatewayService.enabled = False\nc.ScratchService.enabled = False\n"
    with HubProcess(tmp_path, extra_config=config) as hub:
        services = requests.get(
            f"{hub.url}/hub/api/services",
            headers={"Authorization": f"token {user_token(hub, hub.login('ada'), 'ada')}"},
            timeout=10,
        ).json()
        assert set(services) == {"idle-culler", "binder-launcher"}
        katherine = hub.login("katherine")
        assert hub.api(katherine, "post", "/users/katherine/server", json={}).status_code in (
            201,
            202,
        )
        hub.wait_for_server(katherine, "katherine")
        env = server_environment(hub, "katherine")
        assert not [name for name in env if name.startswith(("DASK_GATEWAY__", "PANGEO_SCRATCH"))]
        hub.api(katherine, "delete", "/users/katherine/server")
        hub.wait_for_stop(katherine, "katherine")
