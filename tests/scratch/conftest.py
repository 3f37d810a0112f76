"""Scratch test fixtures: moto's S3+STS server on loopback, IAM evaluation, hub helpers."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.hubprocess import free_port

BUCKET = "pangeo-scratch"
OTHER_BUCKET = "someone-elses-bucket"
ROLE_ARN = "arn:aws:iam::123456789012:role/scratch-user"
SERVICE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "service-key",
    "AWS_SECRET_ACCESS_KEY": "service-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="module")
def moto_url():
    """moto's server (S3 + STS + IAM) on a free loopback port, stopped afterwards."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    s3 = boto3_client("s3", url)
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=OTHER_BUCKET)
    yield url
    server.stop()


@pytest.fixture(scope="module")
def service_aws_env():
    """The scratch service's own AWS identity (what an instance role would give it)."""
    saved = {key: os.environ.get(key) for key in SERVICE_AWS_ENV}
    os.environ.update(SERVICE_AWS_ENV)
    yield SERVICE_AWS_ENV
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def boto3_client(service: str, url: str):
    import boto3

    return boto3.session.Session(
        aws_access_key_id=SERVICE_AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SERVICE_AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).client(service, endpoint_url=url)


def s3_config(moto_url: str, **extra) -> str:
    """A PANGEOHUB_SCRATCH_CONFIG body pointing the s3 backend at moto."""
    lines = [
        'c.ScratchService.backend = "s3"',
        f'c.S3ScratchBackend.bucket = "{BUCKET}"',
        f'c.S3ScratchBackend.role_arn = "{ROLE_ARN}"',
        f'c.S3ScratchBackend.endpoint_url = "{moto_url}"',
    ]
    lines += [f"c.{key} = {value!r}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


# --- IAM policy evaluation ------------------------------------------------------------


def _string_like(expected, actual: str) -> bool:
    """IAM's StringLike: case-sensitive, ``*`` any run, ``?`` one character."""
    patterns = [expected] if isinstance(expected, str) else expected
    for pattern in patterns:
        regex = "".join(
            ".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern
        )
        if re.fullmatch(regex, actual, flags=re.DOTALL):
            return True
    return False


@pytest.fixture(scope="session")
def iam_evaluator():
    """moto's IAM policy evaluator, taught the ``StringLike`` operator it lacks.

    moto evaluates Allow/Deny, actions, resources and conditions, but its condition
    table has only StringEquals and treats any other operator as satisfied -- which
    would make every prefix-conditioned listing look allowed. Registering StringLike
    (IAM's documented semantics) makes the check stricter, never looser.
    """
    from moto.iam import policy_conditions
    from moto.iam.access_control import IAMPolicy, PermissionResult

    policy_conditions.CONDITION_OPERATIONS.setdefault("StringLike", _string_like)

    def allowed(policy: dict, action: str, resource: str, context: dict | None = None) -> bool:
        result = IAMPolicy(json.dumps(policy)).is_action_permitted(
            action, resource, incoming_condition_values=context
        )
        return result == PermissionResult.PERMITTED

    return allowed


def session_policy_of(access_key_id: str) -> dict:
    """The session policy moto's STS recorded for credentials ``access_key_id``."""
    from moto.sts.models import sts_backends

    for account in sts_backends.values():
        for backend in account.values():
            for role in backend.assumed_roles:
                if role.access_key_id == access_key_id:
                    return json.loads(role.policy)
    raise AssertionError(f"moto issued no credentials {access_key_id}")


# --- the real hub ------------------------------------------------------------------------


def server_environment(hub, user: str) -> dict[str, str]:
    """The environment of ``user``'s running single-user server process (from /proc)."""
    marker = f"PANGEOHUB_TEST_HUB={hub.marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker in raw and f"JUPYTERHUB_USER={user}".encode() in raw:
            pairs = (item.decode().split("=", 1) for item in raw if b"=" in item)
            return dict(pairs)
    raise AssertionError(f"no server process of {user}")


def user_token(hub, session, user: str, scopes: list[str] | None = None) -> str:
    body = {"note": "scratch test"}
    if scopes is not None:
        body["scopes"] = scopes
    response = hub.api(session, "post", f"/users/{user}/tokens", json=body)
    assert response.status_code == 201, response.text
    return response.json()["token"]
