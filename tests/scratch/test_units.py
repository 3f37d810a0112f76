"""Scratch pieces on their own: names, configuration errors, policies, sweeper, CLI."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time

import pytest

from pangeohub.scratch import ScratchConfigError, UnsafeName, backend_class, user_segment
from pangeohub.scratch.base import Issued
from pangeohub.scratch.local import LocalScratchBackend, sweep
from pangeohub.scratch.s3 import S3ScratchBackend, session_policy

from .conftest import BUCKET, ROLE_ARN


@pytest.mark.parametrize("name", ["grace", "jane-doe", "a.b_c", "x1"])
def test_plain_names_are_kept(name):
    assert user_segment(name) == name


@pytest.mark.parametrize(
    "name",
    ["..", "../katherine", "a/../../b", "grace/", "Grace", "zoë", "用户", "a" * 300, "a---b", "."],
)
def test_tricky_names_are_escaped_safely(name):
    segment = user_segment(name)
    assert "/" not in segment and ".." not in segment and segment not in ("", ".")
    assert len(segment) <= 60 and segment.isascii()
    assert "---" in segment  # the escaped form can never equal a plain name


def test_escaping_never_merges_two_users():
    names = ["zoë", "zoe", "zo-e", "../zoe", "ZOE", "zoe" + "x" * 100, "zoe" + "y" * 100]
    assert len({user_segment(n) for n in names}) == len(names)


@pytest.mark.parametrize("name", ["", "a\x00b", "tab\tname", "x" * 2000])
def test_unusable_names_are_refused(name):
    with pytest.raises(UnsafeName):
        user_segment(name)


def test_unknown_backend_is_a_configuration_error():
    with pytest.raises(ScratchConfigError, match="Unknown scratch backend 'ftp'.*s3"):
        backend_class("ftp")
    with pytest.raises(ScratchConfigError, match="cannot be loaded"):
        backend_class("no_such_module:Backend")


def test_service_refuses_to_start_with_an_unknown_backend(tmp_path):
    config = tmp_path / "scratch_config.py"
    config.write_text('c.ScratchService.backend = "ftp"\n')
    result = subprocess.run(
        [sys.executable, "-m", "pangeohub.scratch.service", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Unknown scratch backend 'ftp'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"bucket": BUCKET}, "role_arn"),
        ({"bucket": "Bad_Bucket", "role_arn": ROLE_ARN}, "Bucket name"),
        ({"bucket": BUCKET, "role_arn": ROLE_ARN, "renew_before_seconds": 4000}, "less than"),
    ],
)
def test_s3_configuration_errors(settings, message):
    with pytest.raises(ScratchConfigError, match=message):
        S3ScratchBackend(**settings).check_config()


def test_bad_prefix_is_a_configuration_error():
    with pytest.raises(ScratchConfigError, match="prefix"):
        S3ScratchBackend(prefix="../other")


def test_url_is_scheme_bucket_prefix_user():
    backend = S3ScratchBackend(bucket=BUCKET, role_arn=ROLE_ARN, prefix="scratch")
    assert backend.url("grace") == f"s3://{BUCKET}/scratch/grace"
    assert backend.key_prefix("grace") == "scratch/grace/"


@pytest.mark.parametrize("user", ["grace", "../katherine", "zoë", "a*b", "x" * 200])
def test_session_policy_reaches_only_the_users_prefix(iam_evaluator, user):
    key_prefix = S3ScratchBackend(bucket=BUCKET).key_prefix(user)
    policy = session_policy(BUCKET, key_prefix)
    arn = f"arn:aws:s3:::{BUCKET}"
    allowed = iam_evaluator
    assert allowed(policy, "s3:PutObject", f"{arn}/{key_prefix}data/x.zarr/0.0")
    assert allowed(policy, "s3:ListBucket", arn, {"s3:prefix": key_prefix})
    assert not allowed(policy, "s3:GetObject", f"{arn}/scratch/katherine/x")
    assert not allowed(policy, "s3:ListBucket", arn, {"s3:prefix": ""})
    assert not allowed(policy, "s3:ListBucket", arn, {"s3:prefix": "scratch/"})
    assert not allowed(policy, "s3:DeleteBucket", arn)
    assert not allowed(policy, "s3:PutBucketPolicy", arn)


def test_sweeper_removes_only_old_files(tmp_path):
    now = time.time()
    old, new = now - 8 * 86400, now - 6 * 86400
    user = tmp_path / "grace"
    (user / "deep" / "er").mkdir(parents=True)
    files = {
        "old.csv": old,
        "new.csv": new,
        "deep/old.nc": old,
        "deep/er/new.zarr": new,
        "deep/er/old.zarr": old,
    }
    for rel, mtime in files.items():
        (user / rel).write_text("x")
        os.utime(user / rel, (mtime, mtime))
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text("not scratch")
    os.utime(outside, (old, old))
    (user / "link").symlink_to(outside)
    os.utime(user / "link", (old, old), follow_symlinks=False)
    empty_old = user / "empty"
    empty_old.mkdir()
    os.utime(empty_old, (old, old))
    for directory in (user / "deep" / "er", user / "deep", user):
        os.utime(directory, (new, new))

    removed = sweep(tmp_path, 7 * 86400, now)

    left = {str(p.relative_to(user)) for p in user.rglob("*") if p.is_file()}
    assert left == {"new.csv", "deep/er/new.zarr"}
    assert removed == 4  # three old files and the old link
    assert outside.exists()  # a link is removed, never followed
    assert not empty_old.exists() and user.is_dir()
    outside.unlink()


async def test_local_backend_gives_each_user_a_private_directory(tmp_path):
    backend = LocalScratchBackend(root=str(tmp_path / "scratch"))
    await backend.start()
    issued = await backend.credentials("../katherine")
    path = issued.credentials["path"]
    assert os.path.dirname(path) == str(tmp_path / "scratch")
    assert issued.url == f"file://{path}" and os.path.isdir(path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o700"


def test_local_root_must_be_absolute():
    with pytest.raises(ScratchConfigError, match="absolute"):
        LocalScratchBackend(root="relative/dir").check_config()


def test_gcs_boundary_limits_objects_and_listing_to_the_prefix():
    from pangeohub.scratch.gcs import access_boundary

    boundary = access_boundary(BUCKET, "scratch/grace/").to_json()["accessBoundary"]
    (rule,) = boundary["accessBoundaryRules"]
    assert rule["availableResource"] == f"//storage.googleapis.com/projects/_/buckets/{BUCKET}"
    assert rule["availablePermissions"] == ["inRole:roles/storage.objectAdmin"]
    expression = rule["availabilityCondition"]["expression"]
    assert f"'projects/_/buckets/{BUCKET}/objects/scratch/grace/'" in expression
    assert "objectListPrefix', '').startsWith('scratch/grace/')" in expression


def test_cli_explains_a_missing_service():
    env = {"PATH": os.environ["PATH"], "JUPYTERHUB_API_TOKEN": "x" * 32}
    result = subprocess.run(
        [sys.executable, "-m", "pangeohub.scratch.cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and result.stdout == ""
    assert "PANGEO_SCRATCH_SERVICE_URL is not set" in result.stderr


def test_issued_json_has_iso_expiration():
    issued = Issued(url="s3://b/p/u", credentials={"k": "v"}, expiration=0)
    assert issued.as_json("s3", "u")["expiration"] == "1970-01-01T00:00:00+00:00"
    assert "k" not in repr(issued)  # credentials never show up in a repr or log line
    assert json.dumps(issued.as_json("s3", "u"))


def test_every_setting_is_documented():
    from pathlib import Path

    from pangeohub.scratch.base import ExpiringCredentials, ScratchBackend
    from pangeohub.scratch.gcs import GCSScratchBackend
    from pangeohub.scratch.hook import ScratchEnvironment
    from pangeohub.scratch.service import ScratchServiceApp
    from pangeohub.scratch.settings import ScratchService

    text = (Path(__file__).resolve().parents[2] / "docs" / "scratch.md").read_text()
    classes = (ScratchService, ScratchServiceApp, ScratchBackend, ExpiringCredentials)
    for cls in (
        *classes,
        S3ScratchBackend,
        GCSScratchBackend,
        LocalScratchBackend,
        ScratchEnvironment,
    ):
        for name, trait in cls.class_own_traits(config=True).items():
            assert f"`{name}`" in text, f"{cls.__name__}.{name} is missing from docs/scratch.md"
            assert trait.help, f"{cls.__name__}.{name} has no help="


@contextlib.asynccontextmanager
async def scratch_health(port: int, handler):
    """A stand-in scratch service on loopback ``port`` answering only ``/health``."""
    from aiohttp import web

    app = web.Application()
    app.router.add_get("/services/scratch/health", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


async def test_overlapping_health_checks_share_one_request():
    """Starts arriving together while the service is slow wait for one answer."""
    import asyncio

    from aiohttp import web

    from pangeohub.hubconfig import free_port
    from pangeohub.scratch.hook import ScratchEnvironment

    hits, answer = [], asyncio.Event()

    async def health(request):
        hits.append(request.path)
        await answer.wait()
        return web.json_response({"ok": True})

    port = free_port()
    async with scratch_health(port, health):
        scratch = ScratchEnvironment(service_url=f"http://127.0.0.1:{port}/services/scratch/")
        checks = [asyncio.ensure_future(scratch.check_service(None)) for _ in range(5)]
        for _ in range(200):  # bounded: until the one request has arrived
            if hits:
                break
            await asyncio.sleep(0.01)
        answer.set()
        assert await asyncio.gather(*checks) == ["available"] * 5
        assert hits == ["/services/scratch/health"]
        assert await scratch.check_service(None) == "available"  # answered from the last
        assert len(hits) == 1
        scratch.health_cache_seconds = 0
        assert await scratch.check_service(None) == "available"  # a later check asks again
        assert len(hits) == 2


async def test_an_unreachable_scratch_service_is_asked_again_at_the_next_start():
    """Only an answer is kept: a start after a failed check checks again, and finds the
    service once it is back."""
    import asyncio

    from aiohttp import web

    from pangeohub.hubconfig import free_port
    from pangeohub.scratch.hook import ScratchEnvironment

    port = free_port()
    scratch = ScratchEnvironment(
        service_url=f"http://127.0.0.1:{port}/services/scratch/", check_timeout=2
    )
    assert await scratch.check_service(None) == "unavailable"  # nothing listens yet
    hits = []

    async def health(request):
        hits.append(request.path)
        return web.json_response({"ok": True})

    async with scratch_health(port, health):
        assert await scratch.check_service(None) == "available"
        assert (
            await asyncio.gather(*(scratch.check_service(None) for _ in range(3)))
            == ["available"] * 3
        )
        assert hits == ["/services/scratch/health"]  # the later ones from that answer
