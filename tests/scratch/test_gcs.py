"""Scratch on Google Cloud Storage end to end, with a fake of Google's endpoints.

The real hub runs the scratch service with the gcs backend; a spawned server's
environment alone lets google-auth obtain a token downscoped to the user's prefix.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from tests.hubprocess import HubProcess

from .conftest import BUCKET, server_environment, user_token
from .fake_google import FakeGoogle

pytestmark = pytest.mark.e2e

USER_SCRIPT = r"""
import json
import google.auth
from google.auth.transport.requests import Request

credentials, project = google.auth.default()
credentials.refresh(Request())
print(json.dumps({"token": credentials.token, "kind": type(credentials).__module__}))
"""


@pytest.fixture(scope="module")
def google():
    fake = FakeGoogle().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def hub(tmp_path_factory, google):
    workdir = tmp_path_factory.mktemp("scratch-gcs")
    key_file = workdir / "service-account.json"
    key_file.write_text(json.dumps(google.service_account_info()))
    admin_file = (
        "\n".join(
            [
                'c.ScratchService.backend = "gcs"',
                f'c.GCSScratchBackend.bucket = "{BUCKET}"',
                f'c.GCSScratchBackend.service_account_file = "{key_file}"',
                f'c.GCSScratchBackend.sts_token_url = "{google.url}/v1/token"',
                f'c.GCSScratchBackend.storage_api_url = "{google.url}/storage/v1"',
                'c.GCSScratchBackend.project = "pangeo-test"',
                "c.ScratchBackend.expiry_days = 3",
            ]
        )
        + "\n"
    )
    hub = HubProcess(workdir, extra_config=admin_file)
    hub.start()
    yield hub
    hub.stop()


def test_server_gets_a_token_downscoped_to_its_prefix(hub, google):
    grace = hub.login("grace")
    assert hub.api(grace, "post", "/users/grace/server", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace")
    env = server_environment(hub, "grace")
    assert env["PANGEO_SCRATCH"] == f"gs://{BUCKET}/scratch/grace" == env["SCRATCH_BUCKET"]
    assert env["PANGEO_SCRATCH_STATUS"] == "available"

    result = subprocess.run(
        [sys.executable, "-c", USER_SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["kind"] == "google.auth.pluggable"  # external_account via our executable
    boundary = google.downscoped[answer["token"]]
    (rule,) = boundary["accessBoundaryRules"]
    expression = rule["availabilityCondition"]["expression"]
    assert f"buckets/{BUCKET}/objects/scratch/grace/'" in expression
    assert "startsWith('scratch/grace/')" in expression
    assert "katherine" not in json.dumps(boundary)
    hub.api(grace, "delete", "/users/grace/server")


def test_lifecycle_rule_is_applied_at_start_up(hub, google):
    rules = google.buckets[BUCKET]["lifecycle"]["rule"]
    assert {
        "action": {"type": "Delete"},
        "condition": {"age": 3, "matchesPrefix": ["scratch/"]},
    } in (rules)
    health = requests.get(f"{hub.url}/services/scratch/health", timeout=10).json()
    assert health == {"backend": "gcs", "expiry": "verified: 3 days"}


def test_token_exchange_refuses_foreign_and_bad_tokens(hub, google):
    url = f"{hub.url}/services/scratch/gcs/token"
    grant = "urn:ietf:params:oauth:grant-type:token-exchange"
    for token, status in (("f" * 32, 401), ("", 401)):
        response = requests.post(
            url, data={"grant_type": grant, "subject_token": token}, timeout=10
        )
        assert response.status_code == status
        assert response.json()["error"] == "invalid_grant"
    katherine = hub.login("katherine")
    token = user_token(hub, katherine, "katherine")
    response = requests.post(url, data={"grant_type": grant, "subject_token": token}, timeout=10)
    assert response.status_code == 200
    boundary = json.dumps(google.downscoped[response.json()["access_token"]])
    assert "scratch/katherine/" in boundary and "grace" not in boundary
    response = requests.post(url, data={"grant_type": "password"}, timeout=10)
    assert response.status_code == 400
