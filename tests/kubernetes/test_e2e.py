"""The real jupyterhub + configurable-http-proxy + pangeo-kubernetes + the fake Kubernetes API.

Each server is a real jupyterhub-singleuser in a fake pod, answering through the proxy.
"""

from __future__ import annotations

import re
from importlib.metadata import entry_points

import pytest
import requests

from tests.chromium import headless_chromium, sign_in

from .conftest import NAMESPACE

pytestmark = pytest.mark.e2e

PROFILES = """[
    {"display_name": "Small", "slug": "small", "default": True},
    {"display_name": "Large", "slug": "large", "cpu_limit": 2, "mem_limit": "4G",
     "disk_size": "10Gi", "groups": ["pangeo-data:climate"]},
    {"display_name": "Broken", "slug": "broken", "image": "pangeo/no-such-image:0.0"},
    {"display_name": "Huge", "slug": "huge", "cpu_limit": 12, "cpu_guarantee": 12},
]"""

# Small's image choices (the first, its default image, is what a start without a choice
# gets) and an unlisted image within the admin's pattern
IMAGE_OPTIONS = """{"small": {"image": {
    "display_name": "Image",
    "choices": {
        "base": {"display_name": "Base notebook", "default": True,
                 "kubespawner_override": {"image": "pangeo/base-notebook:2024.01.01"}},
        "pangeo": {"display_name": "Pangeo notebook",
                   "kubespawner_override": {"image": "pangeo/pangeo-notebook:2024.01.01"}},
    },
    "unlisted_choice": {"enabled": True, "display_name": "Image name",
                        "display_name_in_choices": "Other image...",
                        "kubespawner_override": {"image": "{value}"}},
}}}"""


def spawner_class() -> str:
    names = {ep.name for ep in entry_points(group="jupyterhub.spawners")}
    if "pangeo-kubernetes" in names:
        return "pangeo-kubernetes"
    return "pangeohub.spawner.kubernetes.PangeoKubeSpawner"  # not yet in setup.cfg


def hub_config(fake) -> str:
    return f"""
c.JupyterHub.spawner_class = {spawner_class()!r}
c.KubeSpawner.k8s_api_host = {fake.url!r}
c.KubeSpawner.namespace = {NAMESPACE!r}
c.KubeSpawner.start_timeout = 30
c.KubeSpawner.http_timeout = 30
c.KubeSpawner.k8s_api_request_timeout = 2
c.KubeSpawner.k8s_api_request_retry_timeout = 4
c.KubeSpawner.delete_grace_period = 1
c.PangeoKubeSpawner.image_pull_timeout = 1
c.PangeoKubeSpawner.scheduling_timeout = 1
c.PangeoPolicy.default_image = "pangeo/base-notebook:2024.01.01"
c.PangeoPolicy.named_server_limit = 1
c.PangeoPolicy.named_server_limit_by_group = {{}}
c.PangeoPolicy.profiles = {PROFILES}
c.PangeoKubeSpawner.profile_options = {IMAGE_OPTIONS}
c.PangeoKubeSpawner.unlisted_choice_pattern = r"pangeo/[a-z-]+:[0-9.]+"
"""


@pytest.fixture(scope="module")
def hub(fake, tmp_path_factory):
    from tests.hubprocess import HubProcess

    hub = HubProcess(
        tmp_path_factory.mktemp("k8s-e2e"),
        extra_config=hub_config(fake),
        env={"KUBECONFIG": str(fake.kubeconfig)},
    )
    hub.start()
    yield hub
    hub.stop()


def names(fake, plural: str, user: str) -> list[str]:
    return [
        o["metadata"]["name"]
        for o in fake.list(plural, NAMESPACE)
        if o["metadata"].get("annotations", {}).get("hub.jupyter.org/username") == user
    ]


def answers(hub, session, user: str, server: str = "") -> int:
    """Status of the user's server's API, through the proxy."""
    token = hub.api(session, "post", f"/users/{user}/tokens", json={"note": "e2e"}).json()["token"]
    prefix = f"/user/{user}/{server}/" if server else f"/user/{user}/"
    return requests.get(
        f"{hub.url}{prefix}api/status", headers={"Authorization": f"token {token}"}, timeout=10
    ).status_code


def test_servers_claims_limit_and_profiles(hub, fake):
    grace = hub.login("grace")
    assert hub.api(grace, "post", "/users/grace/server", json={}).status_code in (201, 202)
    hub.wait_for_server(grace, "grace")
    assert answers(hub, grace, "grace") == 200

    response = hub.api(grace, "post", "/users/grace/servers/run2", json={"profile": "large"})
    assert response.status_code in (201, 202), response.text
    hub.wait_for_server(grace, "grace", "run2")
    assert answers(hub, grace, "grace", "run2") == 200
    claim = fake.get("persistentvolumeclaims", "claim-grace--run2")
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
    assert sorted(names(fake, "persistentvolumeclaims", "grace")) == [
        "claim-grace",
        "claim-grace--run2",
    ]

    response = hub.api(grace, "post", "/users/grace/servers/run3", json={})
    assert 400 <= response.status_code < 500
    assert "named servers" in response.json()["message"]

    assert hub.api(grace, "delete", "/users/grace/servers/run2").status_code in (202, 204)
    hub.wait_for_stop(grace, "grace", "run2")
    assert fake.get("pods", "jupyter-grace--run2") is None
    assert fake.get("persistentvolumeclaims", "claim-grace--run2") is not None, "stop keeps it"

    response = hub.api(grace, "delete", "/users/grace/servers/run2", json={"remove": True})
    assert response.status_code in (202, 204)
    fake.wait_for(lambda: fake.get("persistentvolumeclaims", "claim-grace--run2") is None, 20)

    katherine = hub.login("katherine")
    page = katherine.get(f"{hub.url}/hub/spawn", timeout=10).text
    assert "Small" in page and "Large" not in page, "profiles filtered by team"
    assert "Large" in grace.get(f"{hub.url}/hub/spawn/grace/other", timeout=10).text
    xsrf = katherine.cookies.get("_xsrf", path="/hub/")
    forged = katherine.post(
        f"{hub.url}/hub/spawn", data={"profile": "large", "_xsrf": xsrf}, timeout=10
    )
    assert forged.status_code == 403 and "You may not use the profile" in forged.text
    response = hub.api(katherine, "post", "/users/katherine/server", json={"profile": "large"})
    assert response.status_code == 403
    assert "You may not use the profile 'large'" in response.json()["message"]
    assert names(fake, "pods", "katherine") == []

    assert hub.api(grace, "delete", "/users/grace/server").status_code in (202, 204)
    hub.wait_for_stop(grace, "grace")
    log = hub.log_path.read_text(errors="replace").splitlines()
    reflector_errors = [line for line in log if line.startswith("[E") and " reflector:" in line]
    assert reflector_errors == []


PODS = rf"^/api/v1/namespaces/{NAMESPACE}/pods$"
SMALL = {"profile": "small"}


@pytest.mark.parametrize(
    "fault, options, words",
    [
        ("forbidden", SMALL, "refused the hub permission"),
        ("quota", SMALL, "quota of servers in the cluster is used up"),
        ("error", SMALL, "answered with an error (HTTP 500)"),
        ("unreachable", SMALL, "cannot reach the Kubernetes cluster"),
        (None, {"profile": "broken"}, "could not be downloaded"),
        (None, {"profile": "huge"}, "no room for a server of this size"),
    ],
)
def test_faults_give_clear_messages_and_leave_nothing(hub, fake, fault, options, words):
    session = hub.login("katherine")
    claims = names(fake, "persistentvolumeclaims", "katherine")  # the kept claim of a past start
    if fault == "forbidden":
        fake.fault(PODS, 403, "POST")
    elif fault == "error":
        fake.fault(PODS, 500, "POST")
    elif fault == "quota":
        fake.create("resourcequotas", {"metadata": {"name": "q"}, "spec": {"hard": {"pods": "0"}}})
    elif fault == "unreachable":
        fake.api_down()
    try:
        response = hub.api(session, "post", "/users/katherine/server", json=options)
    finally:
        fake.clear_faults()
        if fault == "quota":
            fake.delete("resourcequotas", "q")
        if fault == "unreachable":
            fake.api_up()
    assert response.status_code >= 400, response.text
    message = response.json()["message"]
    assert words in message
    assert "Traceback" not in message and "Unhandled" not in message
    fake.wait_for(
        lambda: (
            names(fake, "pods", "katherine") == []
            and names(fake, "persistentvolumeclaims", "katherine") == claims
        ),
        10,
        what="no orphaned pod or claim",
    )
    if fault == "unreachable":  # the next spawn works once the API is back
        assert hub.api(session, "post", "/users/katherine/server", json=SMALL).status_code in (
            201,
            202,
        )
        hub.wait_for_server(session, "katherine")
        hub.api(session, "delete", "/users/katherine/server")
        hub.wait_for_stop(session, "katherine")


def test_picker_offers_image_choices_and_refuses_a_disallowed_unlisted_image(hub, fake):
    """fancy-profiles' image choices on Kubernetes, as a person uses them in Chromium: the
    list, "Other image..." with its field, a disallowed image refused with a message, then
    a listed choice starts a pod of that image."""
    from tests.conftest import OUTPUT_DIR

    shots = OUTPUT_DIR / "browser-inside"
    shots.mkdir(parents=True, exist_ok=True)
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(f"{hub.url}/hub/login")
        sign_in(page, hub, "grace")
        page.wait_for_url(re.compile(r".*/hub/(spawn|home).*"))
        page.goto(f"{hub.url}/hub/spawn/grace")
        form = page.locator("#form")
        form.get_by_text("Small").first.click()
        form.get_by_role("combobox", name="Image").click()  # react-select opens its menu
        menu = page.locator(".select__menu")
        menu.wait_for()
        choices = [" ".join(t.split()) for t in menu.locator(".select__option").all_inner_texts()]
        assert choices == ["Base notebook", "Pangeo notebook", "Other image..."], choices
        menu.get_by_text("Other image...").click()
        field = form.locator("[id='profile-option-small--image--unlisted-choice']")
        field.fill("evil/miner:latest")
        page.screenshot(path=shots / "k8s-1-picker-unlisted-image.png", full_page=True)
        page.get_by_role("button", name="Start").click()
        page.get_by_text("is not allowed on this hub").wait_for()
        text = " ".join(page.locator("body").inner_text().split())
        assert "The Image 'evil/miner:latest' is not allowed on this hub" in text, text
        assert "Traceback" not in text
        page.screenshot(path=shots / "k8s-2-unlisted-image-refused.png", full_page=True)
        assert names(fake, "pods", "grace") == []

        page.goto(f"{hub.url}/hub/spawn/grace")
        form.get_by_text("Small").first.click()
        form.get_by_role("combobox", name="Image").click()
        page.locator(".select__menu").get_by_text("Pangeo notebook").click()
        page.get_by_role("button", name="Start").click()
        fake.wait_for(lambda: names(fake, "pods", "grace") != [], 30, what="grace's pod")
        pod = fake.get("pods", names(fake, "pods", "grace")[0])
        assert pod["spec"]["containers"][0]["image"] == "pangeo/pangeo-notebook:2024.01.01"
    session = hub.login("grace")
    hub.wait_for_server(session, "grace")
    hub.api(session, "delete", "/users/grace/server")
    hub.wait_for_stop(session, "grace")
