"""Scratch on S3 end to end: the real hub runs the scratch service against moto's S3+STS.

A server spawned by the hub gets only what pangeohub puts in its environment; with that
alone, s3fs and boto3 write and read ``$PANGEO_SCRATCH`` through ``credential_process``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import pytest
import requests

from tests.hubprocess import HubProcess, free_port

from .conftest import (
    BUCKET,
    OTHER_BUCKET,
    ROLE_ARN,
    boto3_client,
    s3_config,
    server_environment,
    session_policy_of,
    user_token,
)

pytestmark = pytest.mark.e2e

USER_SCRIPT = r"""
import json, os, sys
import boto3, s3fs

url = os.environ["PANGEO_SCRATCH"]
bucket, key = url.removeprefix("s3://").split("/", 1)
fs = s3fs.S3FileSystem()
fs.pipe(url + "/hello.txt", b"written by s3fs")
client = boto3.client("s3")
client.put_object(Bucket=bucket, Key=key + "/boto3.txt", Body=b"written by boto3")
result = {
    "s3fs_reads": client.get_object(Bucket=bucket, Key=key + "/hello.txt")["Body"].read().decode(),
    "boto3_reads": fs.cat(url + "/boto3.txt").decode(),
    "listing": sorted(fs.ls(url)),
    "key": boto3.Session().get_credentials().get_frozen_credentials().access_key,
}
print(json.dumps(result))
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory, moto_url, service_aws_env):
    workdir = tmp_path_factory.mktemp("scratch-s3")
    hub = HubProcess(workdir, extra_config=s3_config(moto_url) + PROBE_SERVICE)
    hub.start()
    yield hub
    hub.stop()


# another hub service whose token holds the scratch scope: still not a user
PROBE_TOKEN = "probe" + "0" * 40
PROBE_SERVICE = f"""
c.JupyterHub.services.append({{"name": "probe", "api_token": "{PROBE_TOKEN}"}})
c.JupyterHub.load_roles.append(
    {{"name": "probe", "services": ["probe"], "scopes": ["access:services!service=scratch"]}}
)
"""


@pytest.fixture(scope="module")
def grace_server(hub):
    grace = hub.login("grace")
    response = hub.api(grace, "post", "/users/grace/server", json={})
    assert response.status_code in (201, 202), response.text
    hub.wait_for_server(grace, "grace")
    yield server_environment(hub, "grace")
    hub.api(grace, "delete", "/users/grace/server")


def scratch(hub, token: str | None, **params) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(
        f"{hub.url}/services/scratch/credentials", headers=headers, params=params, timeout=30
    )


def test_server_environment_reaches_scratch_with_s3fs_and_boto3(hub, grace_server, moto_url):
    env = grace_server
    assert env["PANGEO_SCRATCH"] == f"s3://{BUCKET}/scratch/grace" == env["SCRATCH_BUCKET"]
    assert env["PANGEO_SCRATCH_STATUS"] == "available"
    assert not any(k in env for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"))

    result = asyncio.run(run_user_code(USER_SCRIPT, env))

    assert result["s3fs_reads"] == "written by s3fs"
    assert result["boto3_reads"] == "written by boto3"
    assert {f"{BUCKET}/scratch/grace/boto3.txt", f"{BUCKET}/scratch/grace/hello.txt"} <= set(
        result["listing"]
    )
    # the objects are really in the bucket, written with credentials STS issued for grace
    body = boto3_client("s3", moto_url).get_object(Bucket=BUCKET, Key="scratch/grace/hello.txt")
    assert body["Body"].read() == b"written by s3fs"
    resources = json.dumps(session_policy_of(result["key"]))
    assert "scratch/grace/" in resources and "katherine" not in resources


def test_lifecycle_rule_is_applied_at_start_up(hub, moto_url):
    rules = boto3_client("s3", moto_url).get_bucket_lifecycle_configuration(Bucket=BUCKET)["Rules"]
    (rule,) = [r for r in rules if r["ID"] == "pangeohub-scratch-expiry"]
    assert rule["Status"] == "Enabled" and rule["Expiration"]["Days"] == 7
    assert rule["Filter"]["Prefix"] == "scratch/"
    health = requests.get(f"{hub.url}/services/scratch/health", timeout=10).json()
    assert health == {"backend": "s3", "expiry": "verified: 7 days"}


def test_a_user_cannot_reach_another_users_prefix(hub, grace_server, iam_evaluator):
    grace, katherine = hub.login("grace"), hub.login("katherine")
    tokens = {
        "server token": grace_server["JUPYTERHUB_API_TOKEN"],
        "full user token": user_token(hub, grace, "grace"),
        "scratch-only token": user_token(hub, grace, "grace", ["access:services!service=scratch"]),
    }
    arn = f"arn:aws:s3:::{BUCKET}"
    for what, token in tokens.items():
        for asked in ("katherine", "../katherine", "grace/../katherine"):
            refused = scratch(hub, token, user=asked)
            assert refused.status_code == 403, (what, asked)
            assert "only get credentials for your own" in refused.json()["message"]
        other_path = requests.get(
            f"{hub.url}/services/scratch/credentials/katherine",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert other_path.status_code == 404
        answer = scratch(hub, token).json()
        assert answer["user"] == "grace", what
        assert answer["url"] == f"s3://{BUCKET}/scratch/grace"
        policy = session_policy_of(answer["credentials"]["AccessKeyId"])
        allowed = iam_evaluator
        assert allowed(policy, "s3:PutObject", f"{arn}/scratch/grace/x.zarr/.zattrs")
        assert allowed(policy, "s3:ListBucket", arn, {"s3:prefix": "scratch/grace/sub/"})
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert not allowed(policy, action, f"{arn}/scratch/katherine/data.nc"), what
            assert not allowed(policy, action, f"{arn}/scratch/gracey/data.nc"), what
            assert not allowed(policy, action, f"{arn}/other/data.nc"), what
            assert not allowed(policy, action, f"arn:aws:s3:::{OTHER_BUCKET}/scratch/grace/x")
        for prefix in ("", "scratch/", "scratch/katherine/", "scratch/grace"):
            assert not allowed(policy, "s3:ListBucket", arn, {"s3:prefix": prefix}), prefix
        assert not allowed(policy, "s3:ListBucket", f"arn:aws:s3:::{OTHER_BUCKET}")
        assert not allowed(policy, "s3:PutBucketLifecycleConfiguration", arn)
    # and katherine's own credentials reach hers, not grace's
    answer = scratch(hub, user_token(hub, katherine, "katherine")).json()
    policy = session_policy_of(answer["credentials"]["AccessKeyId"])
    assert iam_evaluator(policy, "s3:GetObject", f"{arn}/scratch/katherine/a")
    assert not iam_evaluator(policy, "s3:GetObject", f"{arn}/scratch/grace/hello.txt")


@pytest.mark.parametrize(
    "header, status, message",
    [
        (None, 401, "No JupyterHub token"),
        ("token short", 401, "malformed"),
        ("token " + "f" * 32, 401, "did not accept this token"),
        ("Basic Z3JhY2U6cGFzcw==", 401, "No JupyterHub token"),
    ],
)
def test_bad_tokens_are_refused_with_a_message(hub, header, status, message):
    headers = {"Authorization": header} if header else {}
    response = requests.get(f"{hub.url}/services/scratch/credentials", headers=headers, timeout=30)
    assert response.status_code == status
    assert message in response.json()["message"]


def test_another_services_token_is_forbidden(hub):
    response = scratch(hub, PROBE_TOKEN)
    assert response.status_code == 403
    assert "issued to users only" in response.json()["message"]


def test_under_scoped_token_is_forbidden(hub):
    grace = hub.login("grace")
    token = user_token(hub, grace, "grace", ["read:users:name!user=grace"])
    response = scratch(hub, token)
    assert response.status_code == 403
    assert "lacks the scope access:services!service=scratch" in response.json()["message"]


def test_service_log_holds_no_secret(hub):
    grace = hub.login("grace")
    token = user_token(hub, grace, "grace")
    creds = scratch(hub, token).json()["credentials"]
    log = hub.log_path.read_text(errors="replace")
    assert "Issued S3 scratch credentials for grace" in log
    for secret in (token, creds["SecretAccessKey"], creds["SessionToken"]):
        assert secret not in log


async def test_lifecycle_rule_keeps_other_rules_and_is_idempotent(moto_url, service_aws_env):
    from pangeohub.scratch.s3 import S3ScratchBackend

    s3 = boto3_client("s3", moto_url)
    s3.create_bucket(Bucket="lifecycle-test")
    other = {
        "ID": "logs",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 30},
    }
    s3.put_bucket_lifecycle_configuration(
        Bucket="lifecycle-test", LifecycleConfiguration={"Rules": [other]}
    )
    backend = S3ScratchBackend(
        bucket="lifecycle-test", role_arn=ROLE_ARN, endpoint_url=moto_url, expiry_days=3
    )
    await backend.ensure_expiry()
    await backend.ensure_expiry()
    rules = s3.get_bucket_lifecycle_configuration(Bucket="lifecycle-test")["Rules"]
    assert sorted(r["ID"] for r in rules) == ["logs", "pangeohub-scratch-expiry"]
    ours = next(r for r in rules if r["ID"] == "pangeohub-scratch-expiry")
    assert ours["Expiration"]["Days"] == 3


async def test_unmanaged_missing_lifecycle_rule_is_reported(moto_url, service_aws_env):
    from pangeohub.scratch import BackendUnavailable
    from pangeohub.scratch.s3 import S3ScratchBackend

    boto3_client("s3", moto_url).create_bucket(Bucket="unmanaged-test")
    backend = S3ScratchBackend(
        bucket="unmanaged-test", role_arn=ROLE_ARN, endpoint_url=moto_url, manage_lifecycle=False
    )
    with pytest.raises(BackendUnavailable, match="lacks lifecycle rule"):
        await backend.ensure_expiry()


# --- the service in-process, for what needs a clock or a broken backend ---------------------


async def run_user_code(script: str, env: dict, steps: int = 0):
    """Run ``script`` with exactly ``env``; feed it ``steps`` newlines on request."""
    proc = await asyncio.create_subprocess_exec(
        env.get("PYTHON", sys.executable),
        "-c",
        script,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


async def start_service(hub, config_text: str, tmp_path, hub_api: str | None = None):
    """A ScratchService in this process, checking tokens with the real hub."""
    from jupyterhub.services.auth import HubAuth
    from traitlets.config import Config

    from pangeohub.scratch.service import ScratchServiceApp

    config_file = tmp_path / "scratch_config.py"
    config_file.write_text(config_text)
    config = Config()
    config.HubAuth.api_url = hub_api or f"http://127.0.0.1:{hub.hub_port}/hub/api"
    config.HubAuth.api_token = "not-used-for-token-checks"
    config.HubAuth.access_scopes = {"access:services!service=scratch"}
    app = ScratchServiceApp(config=config)
    app.initialize(["--config", str(config_file), "--ScratchService.url=http://127.0.0.1:0"])
    app.hub_auth = HubAuth(parent=app)
    await app.start_async()
    return app


async def test_credentials_renew_across_expiry(hub, moto_url, tmp_path):
    from pangeohub.scratch.hook import ScratchEnvironment

    config = s3_config(moto_url, **{"S3ScratchBackend.duration_seconds": 900})
    config += "c.S3ScratchBackend.renew_before_seconds = 0\n"
    app = await start_service(hub, config, tmp_path)
    try:
        service_url = f"http://127.0.0.1:{app.port}/services/scratch/"
        scratch_env = ScratchEnvironment(
            config=app.config, service_url=service_url, client_config_dir=str(tmp_path / "c")
        )
        token = user_token(hub, hub.login("grace"), "grace")
        env = await scratch_env.environment("grace", token)
        env.update(JUPYTERHUB_API_TOKEN=token, PATH=os.environ["PATH"], HOME=str(tmp_path))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            RENEW_SCRIPT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        # an hour later on the service's clock: the 15-minute credentials have expired
        app.store.clock = lambda: time.time() + 3600
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()[-3000:]
        second = json.loads(out.decode().strip().splitlines()[-1])
        assert first["key"] != second["key"]
        assert second["read"] == "after renewal"
        assert app.store.issued_count >= 2  # on the shifted clock every later one is stale
        for key in (first["key"], second["key"]):
            assert "scratch/grace/" in json.dumps(session_policy_of(key))
    finally:
        await app.stop_async()


RENEW_SCRIPT = r"""
import json, os, sys
import boto3, s3fs

url = os.environ["PANGEO_SCRATCH"]
bucket, key = url.removeprefix("s3://").split("/", 1)
session = boto3.Session()
client = session.client("s3")
client.put_object(Bucket=bucket, Key=key + "/before.txt", Body=b"before renewal")
print(json.dumps({"key": session.get_credentials().get_frozen_credentials().access_key}))
sys.stdout.flush()
sys.stdin.readline()
client.put_object(Bucket=bucket, Key=key + "/after.txt", Body=b"after renewal")
fs = s3fs.S3FileSystem()
print(json.dumps({
    "key": session.get_credentials().get_frozen_credentials().access_key,
    "read": fs.cat(url + "/after.txt").decode(),
}))
"""


async def test_unreachable_sts_is_a_503_and_the_service_stays_up(hub, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"
    app = await start_service(hub, s3_config(closed), tmp_path)
    try:
        token = user_token(hub, hub.login("grace"), "grace")
        base = f"http://127.0.0.1:{app.port}/services/scratch/"
        response = await asyncio.to_thread(
            requests.get, base + "credentials", headers={"Authorization": f"token {token}"}
        )
        assert response.status_code == 503
        assert "could not be reached" in response.json()["message"]
        health = await asyncio.to_thread(requests.get, base + "health", timeout=10)
        assert health.status_code == 200 and health.json()["expiry"].startswith("unverified")
    finally:
        await app.stop_async()


async def test_unreachable_hub_is_a_503(hub, moto_url, tmp_path):
    dead_hub = f"http://127.0.0.1:{free_port()}/hub/api"
    app = await start_service(hub, s3_config(moto_url), tmp_path, hub_api=dead_hub)
    try:
        url = f"http://127.0.0.1:{app.port}/services/scratch/credentials"
        response = await asyncio.to_thread(
            requests.get, url, headers={"Authorization": "token " + "a" * 32}, timeout=30
        )
        assert response.status_code == 503
        assert "hub could not be reached" in response.json()["message"]
    finally:
        await app.stop_async()
