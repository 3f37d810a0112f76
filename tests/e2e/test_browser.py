"""A person in headless Chromium: sign in, pick a profile, reach JupyterLab."""

import shutil

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make test installs it)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_sign_in_pick_profile_and_reach_jupyterlab(hub_factory, browser, output_dir):
    hub = hub_factory()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(60_000)
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", "katherine")
    page.fill("#password_input", hub.password("katherine"))
    page.click("#login_submit")
    page.goto(f"{hub.url}/hub/spawn")

    profiles = page.locator("input[name=profile]")
    assert [profiles.nth(i).get_attribute("value") for i in range(profiles.count())] == ["small"]
    assert "Large" not in page.inner_text("form")
    page.screenshot(path=output_dir / "profile-picker.png", full_page=True)

    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url("**/user/katherine/lab**", timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    page.screenshot(path=output_dir / "jupyterlab.png")
    assert "JupyterLab" in page.title()
