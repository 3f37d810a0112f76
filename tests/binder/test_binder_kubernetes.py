"""On Kubernetes: the launcher follows BinderHub's build stream (a stand-in speaking its
real event format, tests/binder/fake_binderhub.py) and KubeSpawner runs the image it
reports; any other image is refused."""

from __future__ import annotations

import time

import pytest
from tornado import web

from pangeohub.binder.binderhub import binderhub_build
from tests.kubernetes.conftest import make_user

from .fake_binderhub import IMAGE_PREFIX, FakeBinderHub


@pytest.fixture(scope="module")
def binderhub():
    hub = FakeBinderHub()
    yield hub
    hub.stop()


async def events(binderhub, provider, spec, token="person-token"):
    return [e async for e in binderhub_build(binderhub.url, provider, spec, token, 30)]


async def test_the_build_stream_is_followed_to_the_image(binderhub):
    started = time.monotonic()
    seen = await events(binderhub, "gh", "h14org/demo/main")
    assert time.monotonic() - started < 10  # closed at ready, though BinderHub keeps it open
    assert [e["phase"] for e in seen] == ["waiting", "log", "log", "log", "built"]
    assert seen[1]["message"] == "Picked Git content provider."
    assert seen[-1]["image"].startswith(IMAGE_PREFIX)
    assert binderhub.requests[-1] == ("gh", "h14org/demo/main", "true")  # build_only


async def test_a_failed_build_and_refusals_end_the_stream_with_a_message(binderhub):
    seen = await events(binderhub, "gh", "h14org/demo/broken")
    assert seen[-1]["phase"] == "failed"
    assert "No matching distribution found for nothing-here" in seen[-1]["message"]
    seen = await events(binderhub, "gl", "h14org/demo/main")
    assert seen[-1]["phase"] == "failed" and "No provider found" in seen[-1]["message"]
    seen = await events(binderhub, "gh", "h14org/demo/main", token="")
    assert seen[-1]["phase"] == "failed" and "HTTP 403" in seen[-1]["message"]


async def test_kubespawner_runs_the_image_binderhub_reported(binderhub, make_spawner):
    image = (await events(binderhub, "gh", "h14org/demo/main"))[-1]["image"]
    user = make_user("h14kube", ["pangeo-data:oceans"])
    spawner = make_spawner(
        user,
        "demo-aaaaaaa",
        options={"binder": {"image": image, "repository": "x", "ref": "main"}},
        BinderLauncher__binderhub_image_prefix=IMAGE_PREFIX,
    )
    await spawner.load_user_options()
    assert spawner.image == image
    pod = await spawner.get_pod_manifest()
    assert pod.spec.containers[0].image == image
    assert spawner.get_env()["JUPYTER_IMAGE_SPEC"] == image  # Dask workers run it too


@pytest.mark.parametrize("image", ["evil.example/miner:latest", "", f"{IMAGE_PREFIX}x y:1"])
async def test_an_image_binderhub_did_not_build_is_refused(make_spawner, image):
    spawner = make_spawner(
        make_user("h14kube", []),
        "demo-bbbbbbb",
        options={"binder": {"image": image}},
        BinderLauncher__binderhub_image_prefix=IMAGE_PREFIX,
    )
    with pytest.raises(web.HTTPError) as refused:
        await spawner.load_user_options()
    assert refused.value.status_code in (400, 403)
    assert refused.value.jupyterhub_message
