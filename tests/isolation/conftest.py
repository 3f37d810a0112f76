"""One isolated hub (the real hub as root, the bundle's defaults) for the package's
modules: test_isolation_hub's front doors, then test_root_boundary's back doors."""

from __future__ import annotations

import os

import pytest

from tests.hubprocess import HubProcess

# Users the attacks need beside the sample community. "ada.x" gets a hashed account
# name; COLLIDER is the plain name that used to map to the same account.
COLLIDER = "ada-x-9c4e4ef1"
ISOLATED_CONFIG = f"""
c.JupyterHub.cleanup_servers = False
c.LocalGroupsAuthenticator.users = {{
    "ada": {{"admin": True, "groups": ["pangeo-data:hub-admins"]}},
    "grace": {{"groups": ["pangeo-data:climate"]}},
    "katherine": {{"groups": ["pangeo-data:oceans"]}},
    "ada.x": {{"groups": ["pangeo-data:oceans"]}},
    "{COLLIDER}": {{"groups": ["pangeo-data:oceans"]}},
    "carol": {{"groups": ["pangeo-data:oceans"]}},
}}
# the sweep of local scratch every second (the default follows the culler: hours)
c.ScratchService.expiry_check_seconds = 1
# per-person bounds, small enough to reach in a test
c.Isolation.tmp_size = "32M"
c.Isolation.shm_size = "32M"
c.LocalScratchBackend.size_limit = "64M"
c.GatewayPolicy.worker_memory = {{"min": "512M", "max": "1G", "default": "512M"}}
c.ClusterConfig.scheduler_memory = "512 M"
"""


@pytest.fixture(scope="package")
def hub(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("isolation happens only when the hub is root")
    # Servers run on across hub restarts (as after `systemctl restart jupyterhub`).
    hub = HubProcess(tmp_path_factory.mktemp("isolated"), extra_config=ISOLATED_CONFIG)
    hub.start()
    yield hub
    hub.stop()
