"""On Kubernetes: the launcher follows BinderHub's build stream (a stand-in speaking its
real event format, tests/binder/fake_binderhub.py) and KubeSpawner runs the image it
reports; any other image is refused. The whole path through a real hub: launch page ->
build API -> BinderHub stand-in -> the hub's REST API -> PangeoKubeSpawner on the fake
Kubernetes API (tests/k8s_fake) -> JupyterLab at the requested path."""

from __future__ import annotations

import asyncio
import time

import pytest
from tornado import web

from pangeohub.binder.binderhub import binderhub_build
from tests.hubprocess import HubProcess
from tests.kubernetes.conftest import make_user
from tests.kubernetes.test_e2e import hub_config, names

from .fake_binderhub import IMAGE_PREFIX, FakeBinderHub
from .launching import confirm, follow, launch, stream_url

IMAGE = f"{IMAGE_PREFIX}h14org-2ddemo-abcdef:{'a' * 40}"  # what the stand-in reports
PERSON = "h14kate"


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
    path = "/services/binder/build/gh/h14org/demo/main"
    deadline = time.monotonic() + 10
    while path not in binderhub.closed and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert path in binderhub.closed, "the connection is closed, not left to BinderHub"


async def test_a_failed_build_and_refusals_end_the_stream_with_a_message(binderhub):
    seen = await events(binderhub, "gh", "h14org/demo/broken")
    assert seen[-1]["phase"] == "failed"
    assert "No matching distribution found for nothing-here" in seen[-1]["message"]
    assert "status" not in seen[-1], "a build that failed is not a refusal of the request"
    seen = await events(binderhub, "gl", "h14org/demo/main")
    assert seen[-1]["phase"] == "failed" and "No provider found" in seen[-1]["message"]
    assert seen[-1]["status"] == 404
    seen = await events(binderhub, "gh", "h14org/demo/no-such-tag")
    assert seen == [seen[0]] and seen[0]["status"] == 404
    seen = await events(binderhub, "gh", "h14org/demo/main", token="")
    assert seen[-1]["phase"] == "failed" and "HTTP 403" in seen[-1]["message"]
    assert seen[-1]["status"] == 502  # the hub's set-up, not the person's request


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


@pytest.fixture(scope="module")
def kube_hub(fake, binderhub, tmp_path_factory):
    """A real hub on the fake Kubernetes API (tests/kubernetes/test_e2e.py's set-up) with
    launch links pointed at the BinderHub stand-in, registered as binderhub-service does:
    a service ``binder`` people may access."""
    fake.images[IMAGE] = dict(fake.images["pangeo/base-notebook:2024.01.01"])
    config = (
        hub_config(fake)
        + f"""
c.LocalGroupsAuthenticator.users = {{{PERSON!r}: {{"groups": ["pangeo-data:oceans"]}}}}
c.BinderLauncher.binderhub_url = {binderhub.url!r}
c.BinderLauncher.binderhub_image_prefix = {IMAGE_PREFIX!r}
c.JupyterHub.services = [{{"name": "binder"}}]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service=binder"]}}
]
"""
    )
    hub = HubProcess(
        tmp_path_factory.mktemp("h14-kube-hub"),
        extra_config=config,
        env={"KUBECONFIG": str(fake.kubeconfig)},
    )
    hub.start()
    yield hub
    hub.stop()


def build_tokens(hub, session) -> list:
    tokens = hub.api(session, "get", f"/users/{PERSON}/tokens").json()["api_tokens"]
    return [t for t in tokens if t.get("note") == "binder build"]


@pytest.mark.e2e
def test_a_launch_through_the_hub_runs_binderhubs_image_and_lands_at_the_path(
    kube_hub, fake, binderhub
):
    session = kube_hub.login(PERSON)
    spec, query = "gh/h14org/demo/main", "?urlpath=lab/tree/x.md"
    page = session.get(f"{kube_hub.url}/hub/v2/{spec}{query}", timeout=30)
    # not a trusted repository: the link asks first, and the page follows no build yet
    assert page.status_code == 200 and "binder-confirm-button" in page.text
    assert stream_url(page.text) is None
    confirmed = confirm(kube_hub, session, spec, query)
    assert confirmed.status_code == 200
    stream = stream_url(confirmed.text)
    assert stream.startswith(f"/hub/api/binder/build/{spec}?")
    # the browser's way: the hub's cookie, its XSRF token and the confirmed launch's ticket
    status, events = follow(f"{kube_hub.url}{stream}", session=session)
    assert status == 200, events
    phases = [e["phase"] for e in events]
    assert phases[:2] == ["waiting", "log"] and phases[-3:] == ["built", "launching", "ready"]
    assert binderhub.requests[-1] == ("gh", "h14org/demo/main", "true")
    ready = events[-1]
    server = ready["server"]
    assert server == "demo-aaaaaaa"
    pod = fake.get("pods", f"jupyter-{PERSON}--{server}")
    assert pod["spec"]["containers"][0]["image"] == IMAGE
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["JUPYTER_IMAGE_SPEC"] == IMAGE  # Dask workers run the built image too
    assert build_tokens(kube_hub, session) == [], "the build's token is revoked at its end"

    landed = session.get(f"{kube_hub.url}{ready['url']}", timeout=30)  # through OAuth
    assert landed.status_code == 200
    assert landed.url == f"{kube_hub.url}/user/{PERSON}/{server}/lab/tree/x.md"
    assert "JupyterLab" in landed.text

    path = f"/users/{PERSON}/servers/{server}"
    assert kube_hub.api(session, "delete", path, json={"remove": True}).status_code in (202, 204)
    kube_hub.wait_for_removal(session, PERSON, server)
    fake.wait_for(lambda: names(fake, "pods", PERSON) == [], 20, what="the pod removed")


@pytest.mark.e2e
def test_a_failed_build_or_a_missing_ref_through_the_hub_starts_nothing(kube_hub, fake):
    session = kube_hub.login(PERSON)
    status, events = launch(kube_hub, session, "gh/h14org/demo/broken")
    assert status == 200
    assert events[-1]["phase"] == "failed"
    assert "No matching distribution found for nothing-here" in events[-1]["message"]
    assert "launching" not in [e["phase"] for e in events]

    status, body = launch(kube_hub, session, "gh/h14org/demo/no-such-branch")
    assert status == 404, body
    assert "Could not resolve ref for gh:h14org/demo/no-such-branch" in body["message"]

    servers = kube_hub.api(session, "get", f"/users/{PERSON}").json()["servers"]
    assert servers == {}
    assert names(fake, "pods", PERSON) == []
    assert build_tokens(kube_hub, session) == []
