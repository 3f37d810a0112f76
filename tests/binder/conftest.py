"""Fixtures of the launch tests: one real hub as root for the whole package (the launch
and attack modules share it), a Git server on loopback and local wheels; and the
Kubernetes fixtures (fake API server, PangeoKubeSpawner on it) for the BinderHub tests."""

from __future__ import annotations

import os

import pytest

from tests.hubprocess import HubProcess
from tests.kubernetes.conftest import (  # noqa: F401 (fixtures)
    fake,
    make_spawner,
    reflector_errors,
    spawner_log,
    stop_reflectors,
)

from .gitrepo import ServedRepos, readable_wheels
from .launching import BUILD_DISK, BUILD_MEMORY

# people of the shared hub: ann and bob launch (test_binder_launch), eve attacks
PEOPLE = {
    "h14ann": "pangeo-data:climate",
    "h14bob": "pangeo-data:oceans",
    "h14eve": "pangeo-data:climate",
}


@pytest.fixture(scope="package")
def repos(tmp_path_factory):
    served = ServedRepos(tmp_path_factory.mktemp("h14git") / "served")
    os.chmod(served.root.parent, 0o755)
    yield served
    served.stop()


@pytest.fixture(scope="package")
def wheels():
    """Local wheels, readable by people's accounts (pytest's own directories are not)."""
    value = "VALUE = 'only in the repository environment'\n"
    with readable_wheels("h14-wheels-", "h14tinypkg", "1.0", value) as directory:
        yield directory


@pytest.fixture(scope="package")
def hub(tmp_path_factory, repos, wheels):
    users = {name: {"groups": [group]} for name, group in PEOPLE.items()}
    config = f"""
        c.LocalGroupsAuthenticator.users = {users!r}
        c.BinderLauncher.github_url = {repos.url!r}
        c.BinderBuilder.find_links = [{str(wheels)!r}]
        c.BinderBuilder.offline = True
        c.PangeoPolicy.named_server_limit = 3
        c.BinderBuilder.mem_limit = {BUILD_MEMORY}
        c.BinderBuilder.cpu_limit = 1.5
        c.BinderBuilder.max_size = {BUILD_DISK}
        c.BinderLauncher.trusted_repositories = [{repos.url + "/h14trusted/*"!r}]
    """
    hub = HubProcess(tmp_path_factory.mktemp("h14hub"), extra_config=config)
    hub.repos_url = repos.url
    hub.start()
    yield hub
    hub.stop()
