"""A person in headless Chromium: sign in, pick a profile, reach JupyterLab."""

import pytest

from tests.chromium import headless_chromium, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def browser():
    with headless_chromium() as browser:
        yield browser


def test_sign_in_pick_profile_and_reach_jupyterlab(hub_factory, browser, output_dir, docs_images):
    hub = hub_factory()
    shots = docs_images / "quickstart"
    shots.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(60_000)
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").wait_for()
    page.screenshot(path=shots / "sign-in.png")
    sign_in(page, hub, "katherine")
    page.goto(f"{hub.url}/hub/spawn")

    profiles = page.locator("input[name=profile]")
    assert [profiles.nth(i).get_attribute("value") for i in range(profiles.count())] == ["small"]
    assert "Large" not in page.inner_text("form")
    page.screenshot(path=output_dir / "profile-picker.png", full_page=True)
    page.screenshot(path=shots / "spawn.png")

    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/katherine/lab**", timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    page.locator(".jp-Launcher").first.wait_for()
    page.locator("#jp-top-panel").get_by_text("Scratch:").wait_for()
    page.screenshot(path=output_dir / "jupyterlab.png")
    page.screenshot(path=shots / "jupyterlab.png")
    assert "JupyterLab" in page.title()
