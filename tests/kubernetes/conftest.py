"""Fixtures for the Kubernetes tests: the fake API server and spawners that talk to it."""

from __future__ import annotations

import logging
import os
from types import SimpleNamespace

import pytest
from jupyterhub.objects import Hub
from kubernetes_asyncio.config import kube_config as kube_config_module
from traitlets.config import Config

from pangeohub.spawner.kubernetes import PangeoKubeSpawner

from ..k8s_fake import FakeKube
from ..scratch.conftest import iam_evaluator  # noqa: F401 (moto's IAM evaluator, a fixture)

NAMESPACE = "jhub"
# a tiny "notebook": records its environment in its working directory (the claim) and serves HTTP
SERVER_CMD = [
    "python",
    "-c",
    "import http.server, json, os; json.dump(dict(os.environ), open('env.json', 'w'));"
    " http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler,"
    " port=8888, bind='0.0.0.0')",
]
PROFILES = [
    {"display_name": "Small", "slug": "small", "cpu_limit": 1, "mem_limit": "2G", "default": True},
    {
        "display_name": "Large",
        "slug": "large",
        "cpu_limit": 4,
        "mem_limit": "16G",
        "cpu_guarantee": 2,
        "mem_guarantee": "8G",
        "disk_size": "10Gi",
        "groups": ["pangeo-data:climate"],
        "image": "pangeo/ml-notebook:2024.01.01",
    },
    {"display_name": "Broken image", "slug": "broken", "image": "pangeo/no-such-image:0.0"},
    {"display_name": "Huge", "slug": "huge", "cpu_limit": 12, "cpu_guarantee": 12},
]


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_reflector_errors: the test makes the reflectors log errors on purpose"
    )


class ReflectorErrors(logging.Handler):
    """Collects ERROR records logged by KubeSpawner's reflectors."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        if record.pathname.endswith(os.path.join("kubespawner", "reflector.py")):
            self.records.append(record)


@pytest.fixture(scope="module")
def fake():
    with FakeKube(namespace=NAMESPACE, cpu="8", backoff=0.2) as kube:
        # KubeSpawner loads a kubeconfig even with k8s_api_host set
        old = kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION
        kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION = str(kube.kubeconfig)
        yield kube
        kube_config_module.KUBE_CONFIG_DEFAULT_LOCATION = old


@pytest.fixture(scope="module")
def spawner_log():
    log = logging.getLogger("pangeohub.tests.kubespawner")
    log.setLevel(logging.INFO)
    return log


@pytest.fixture
def reflector_errors(request, spawner_log):
    """Fails the test on any ERROR a reflector logs, unless marked allow_reflector_errors."""
    handler = ReflectorErrors()
    spawner_log.addHandler(handler)
    yield handler
    spawner_log.removeHandler(handler)
    if "allow_reflector_errors" not in request.keywords:
        assert not handler.records, [r.getMessage() for r in handler.records]


@pytest.fixture(scope="module")
async def stop_reflectors():
    """Reflectors are class-level: stop them before this module's event loop closes."""
    yield
    await PangeoKubeSpawner._stop_all_reflectors()


def make_user(name: str, groups=()) -> SimpleNamespace:
    return SimpleNamespace(
        name=name,
        id=abs(hash(name)) % 10**6,
        url=f"/user/{name}/",
        groups=[SimpleNamespace(name=g) for g in groups],
        escaped_name=name,
        settings={},
    )


def kube_config(fake: FakeKube, **extra) -> Config:
    c = Config()
    c.KubeSpawner.k8s_api_host = fake.url
    c.KubeSpawner.namespace = NAMESPACE
    c.KubeSpawner.cmd = SERVER_CMD
    c.KubeSpawner.start_timeout = 20
    c.KubeSpawner.k8s_api_request_timeout = 2
    c.KubeSpawner.k8s_api_request_retry_timeout = 4
    c.KubeSpawner.delete_grace_period = 1
    c.PangeoPolicy.profiles = PROFILES
    c.PangeoPolicy.default_image = "pangeo/base-notebook:2024.01.01"
    c.PangeoKubeSpawner.image_pull_timeout = 1
    c.PangeoKubeSpawner.scheduling_timeout = 1
    for key, value in extra.items():
        section, name = key.split("__")
        setattr(c[section], name, value)
    return c


@pytest.fixture
def make_spawner(fake, spawner_log, reflector_errors, stop_reflectors):
    """make_spawner(user, name="", options=None, **config) -> a PangeoKubeSpawner on the fake."""

    def make(user, name: str = "", options: dict | None = None, cls=PangeoKubeSpawner, **extra):
        spawner = cls(
            user=user,
            orm_spawner=SimpleNamespace(name=name, server=None, display_name=name, user_options={}),
            hub=Hub(),
            config=kube_config(fake, **extra),
            log=spawner_log,
            api_token="test-token",
            oauth_client_id=f"jupyterhub-user-{user.name}",
        )
        spawner.user_options = options or {}
        return spawner

    return make
