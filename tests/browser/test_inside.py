"""Inside a server, as a person sees it in headless Chromium: one real hub (with its
managed Dask Gateway) and one browser context shared by every test of this module, in
the order a person goes: picker, Lab (status bar, shared data, Dask), home page.
Screenshots go under the test output."""

from __future__ import annotations

import os
import re
import time

import pytest

from tests.github.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.hubprocess import HubProcess
from tests.isolation_cleanup import hub_id

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian chromium is not installed"),
]

USER = "h15grace"
SERVER = "work"
CONFIG = f"""
c.LocalGroupsAuthenticator.users = {{
    "h15ada": {{"admin": True, "groups": ["pangeo-data:hub-admins"]}},
    {USER!r}: {{"groups": ["pangeo-data:climate"]}},
}}
c.PangeoPolicy.named_server_limit = 3
c.PangeoPolicy.profiles = [
    {{"display_name": "Small", "slug": "small", "description": "For everyone.",
      "cpu_limit": 1, "mem_limit": "1G", "disk_size": "1Gi", "default": True}},
    {{"display_name": "Climate Large", "slug": "large", "description": "Climate team.",
      "cpu_limit": 1.5, "mem_limit": "1536M", "disk_size": "2Gi",
      "groups": ["pangeo-data:climate"]}},
    {{"display_name": "Oceans Only", "slug": "oceans", "description": "Oceans team.",
      "groups": ["pangeo-data:oceans"]}},
]
"""
SHARED_TEXT = "Community data catalogue, put here by an admin."


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = HubProcess(tmp_path_factory.mktemp("h15-inside"), extra_config=CONFIG)
    hub.start()
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def shots(request):
    from tests.conftest import OUTPUT_DIR

    path = OUTPUT_DIR / "browser-inside"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def page(hub):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{hub.url}/hub/login")
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", hub.password(USER))
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/hub/(spawn|home).*"))
        yield page
        context.close()
        browser.close()


def shared_dir(hub) -> str:
    if hub.isolated:
        return f"/srv/pangeohub/{hub_id(hub.state_dir)}/shared"
    return str(hub.state_dir / "shared")


def test_picker_shows_only_allowed_profiles_and_starts_the_chosen_one(hub, page, shots):
    page.goto(f"{hub.url}/hub/spawn/{USER}/{SERVER}")
    form = page.locator("#form")
    form.get_by_text("Climate Large").wait_for()
    page.screenshot(path=shots / "1-picker.png", full_page=True)
    text = form.inner_text()
    assert "Small" in text and "Oceans Only" not in text
    assert "1.5 CPU, 1.5 GiB memory, 2 GiB disk" in text  # resources beside the name
    form.get_by_text("Climate Large").click()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(rf".*/user/{USER}/{SERVER}/lab.*"), timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.screenshot(path=shots / "2-lab.png")


def test_status_bar_shows_the_servers_limits(page, shots):
    memory = page.locator("#jp-main-statusbar").get_by_text(re.compile(r"Mem:"))
    memory.wait_for()
    page.screenshot(path=shots / "3-status-bar.png")
    text = page.locator("#jp-main-statusbar").inner_text()
    assert "1.50 GB" in text or "1536" in text, text
