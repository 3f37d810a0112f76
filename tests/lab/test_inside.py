"""Inside a server, as a person sees it in headless Chromium: one real hub (with its
managed Dask Gateway) and one browser context shared by every test of this module, in
the order a person goes: picker, Lab (status bar, shared data, Dask), home page.
Screenshots go under the test output."""

from __future__ import annotations

import grp
import html
import os
import re
import signal
import subprocess
import time

import pytest
import requests

from pangeohub.lab.machine import Machine
from pangeohub.policy import format_bytes
from tests.chromium import headless_chromium, needs_chromium, sign_in
from tests.dask_clients import closing, new_gateway
from tests.hubprocess import HubProcess
from tests.isolation_cleanup import hub_id

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    needs_chromium,
    # dask-gateway's Gateway.__del__, run by the garbage collector after the client is
    # closed, asks for its stopped loop; noise from upstream, not a failure of ours
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

MACHINE = Machine.this_one()
USER = "h15grace"
OTHER = "h15kath"  # another person, who may not see grace's Dask dashboards
ADMIN = "h15ada"  # her account joins the shared directory's writer group
WRITERS = "h15-curators"
SERVER = "work"
CONFIG = f"""
c.LocalGroupsAuthenticator.users = {{
    {ADMIN!r}: {{"admin": True, "groups": ["pangeo-data:hub-admins"]}},
    {USER!r}: {{"groups": ["pangeo-data:climate"]}},
    {OTHER!r}: {{"groups": ["pangeo-data:oceans"]}},
}}
c.PangeoPolicy.named_server_limit = 3
# the hub checks its services every second, so one check comes round while Ctrl-C stops them
c.JupyterHub.service_check_interval = 1
c.PangeoPolicy.max_cpu_limit = {2 * MACHINE.cpus}
c.PangeoPolicy.max_mem_limit = {2 * MACHINE.memory}
c.SharedData.writer_group = {WRITERS!r}
c.PangeoPolicy.profiles = [
    {{"display_name": "Small", "slug": "small", "description": "For everyone.",
      "cpu_limit": 1, "mem_limit": "1G", "disk_size": "1Gi", "default": True}},
    {{"display_name": "Climate Large", "slug": "large", "description": "Climate team.",
      "cpu_limit": 1, "mem_limit": "1536M", "disk_size": "2Gi",
      "groups": ["pangeo-data:climate"]}},
    {{"display_name": "Climate Huge", "slug": "huge", "description": "Bigger than this machine.",
      "cpu_limit": {2 * MACHINE.cpus}, "mem_limit": {2 * MACHINE.memory},
      "groups": ["pangeo-data:climate"]}},
    {{"display_name": "Oceans Only", "slug": "oceans", "description": "Oceans team.",
      "groups": ["pangeo-data:oceans"]}},
]
"""
SHARED_TEXT = "Community data catalogue, put here by an admin."
# A PUT to the server's contents API from the Lab's page, with the Lab's own XSRF cookie.
SAVE_JS = """async ({path, text}) => {
  const base = document.querySelector("body").dataset.baseUrl
    || JSON.parse(document.getElementById("jupyter-config-data").textContent).baseUrl;
  const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
  const r = await fetch(base + "api/contents/" + path, {method: "PUT",
    headers: {"Content-Type": "application/json", "X-XSRFToken": xsrf},
    body: JSON.stringify({type: "file", format: "text", content: text})});
  return [r.status, await r.text()];
}"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # the writer group exists before the hub makes the shared directory (as root only;
    # otherwise the hub warns and only root writes); a killed run's group is reused
    if os.geteuid() == 0:
        subprocess.run(["groupadd", WRITERS], stderr=subprocess.DEVNULL)
    hub = HubProcess(tmp_path_factory.mktemp("h15-inside"), extra_config=CONFIG)
    try:
        hub.start()
        yield hub
    finally:
        hub.stop()
        if os.geteuid() == 0:
            subprocess.run(["groupdel", WRITERS], stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def shots(request):
    from tests.conftest import OUTPUT_DIR

    path = OUTPUT_DIR / "browser-inside"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def page(hub):
    with headless_chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{hub.url}/hub/login")
        sign_in(page, hub, USER)
        page.wait_for_url(re.compile(r".*/hub/(spawn|home).*"))
        yield page
        context.close()


def shared_dir(hub) -> str:
    if hub.isolated:
        return f"/srv/pangeohub/{hub_id(hub.state_dir)}/shared"
    return str(hub.state_dir / "shared")


def open_sidebar(page, panel_id: str):
    """The Lab's left panel ``panel_id``, opened (its tab toggles it, so only if hidden)."""
    panel = page.locator(f"#{panel_id}")
    if not panel.is_visible():
        page.locator(f"li[data-id='{panel_id}']").click()
    panel.wait_for()
    return panel


def test_start_up_raises_no_false_alarm(hub):
    """The hub's start-up log has no warning of pangeohub's making: no deprecation line
    for pangeohub's own routes, no 404 from the hub's check of the gateway's address, no
    failure of the gateway's proxy to read routes from a gateway not yet listening."""
    deadline = time.monotonic() + 30
    while "Dask gateway proxy started" not in hub.log_tail(100_000):  # the proxy is there
        assert time.monotonic() < deadline, hub.log_tail()
        time.sleep(0.2)
    log = hub.log_tail(100_000)
    for alarm in (
        "JupyterHub.extra_handlers is deprecated",
        "404 GET /services/dask-gateway/",
        "Unexpected failure fetching routing table",
        "Traceback",
    ):
        assert alarm not in log, f"{alarm!r} at start-up:\n{log}"


def test_launch_form_makes_a_link_and_a_badge_to_share(hub, page, shots, docs_images):
    """As mybinder.org's form: repository, ref and a file give the launch link and a
    Markdown badge, each to copy; the link is one the hub launches, the badge its own."""
    page.goto(f"{hub.url}/hub/spawn/{USER}/{SERVER}")
    page.fill("#binder-repository", "https://github.com/pangeo-data/pangeo-tutorial")
    page.fill("#binder-ref", "main")
    page.fill("#binder-path", "notebooks/intro.ipynb")
    link = page.input_value("#binder-share-link")
    spec = "gh/pangeo-data/pangeo-tutorial/main"
    assert link == f"{hub.url}/hub/v2/{spec}?labpath=notebooks%2Fintro.ipynb", link
    badge = page.input_value("#binder-share-badge")
    assert badge == f"[![Launch]({hub.url}/hub/launch-badge.svg)]({link})", badge
    preview = page.locator("#binder-badge-preview")
    preview.wait_for()
    assert page.evaluate("document.getElementById('binder-badge-preview').naturalWidth") > 0
    page.click("#binder-copy-link")
    assert page.inner_text("#binder-copy-link") == "Copied"
    page.locator(".pangeo-launch-link").scroll_into_view_if_needed()
    page.screenshot(path=shots / "0-launch-link.png", full_page=True)
    page.screenshot(path=docs_images / "inside" / "launch-link.png", full_page=True)
    image = requests.get(f"{hub.url}/hub/launch-badge.svg", timeout=10)  # for anyone
    assert image.ok and image.headers["Content-Type"] == "image/svg+xml"
    assert "launch: Pangeo hub" in image.text
    launch = page.request.get(link)  # the launch page: an untrusted repository asks first
    assert launch.ok and "Launch pangeo-tutorial?" in launch.text()
    assert "https://github.com/pangeo-data/pangeo-tutorial" in launch.text()


def test_picker_shows_only_allowed_profiles_and_starts_the_chosen_one(
    hub, page, shots, docs_images
):
    page.goto(f"{hub.url}/hub/spawn/{USER}/{SERVER}")
    form = page.locator("#form")
    form.get_by_text("Climate Large").wait_for()
    page.screenshot(path=shots / "1-picker.png", full_page=True)
    page.screenshot(path=docs_images / "inside" / "picker.png")
    # the page names the server it starts
    heading = " ".join(page.locator("h1").first.inner_text().split())
    assert heading == f"Start your server {SERVER}", heading
    text = form.inner_text()
    assert "Small" in text and "Oceans Only" not in text
    assert "1 CPU, 1.5 GiB memory, 2 GiB disk" in text  # resources beside the name
    # a profile larger than this machine: what a server will get, and why
    huge = f"{MACHINE.cpus} CPU, {format_bytes(MACHINE.memory)} memory"
    assert huge in text and "Capped to this machine's size (the profile asks for" in text, text
    assert f"Profile 'Climate Huge' asks for {2 * MACHINE.cpus} CPU" in hub.log_tail(10_000)
    form.get_by_text("Climate Large").click()
    page.get_by_role("button", name="Start").click()
    page.wait_for_url(re.compile(rf".*/user/{USER}/{SERVER}/lab.*"), timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.screenshot(path=shots / "2-lab.png")


# every bar drawn in the top bar, as the fraction of its track it fills (pangeohub's or
# jupyter-resource-usage's own)
BAR_FILLS_JS = """() => [...document.querySelectorAll(
    '#jp-top-panel .pangeohub-bar-fill, #jp-top-panel .jp-IndicatorFiller')]
  .filter(e => e.offsetParent !== null)
  .map(e => e.getBoundingClientRect().width / e.parentElement.getBoundingClientRect().width)"""
# what the status and top bars colour as a warning: red text or a pink background
RED_JS = """() => [...document.querySelectorAll('#jp-main-statusbar *, #jp-top-panel *')]
  .filter(e => {
    const style = getComputedStyle(e);
    const [r, g, b] = (style.color.match(/\\d+/g) || []).map(Number);
    return (r > 150 && g < 100 && b < 100) || style.backgroundColor === "rgb(255, 210, 210)";
  })
  .map(e => e.textContent.trim().slice(0, 80))"""


def test_top_bar_shows_the_servers_limits_not_the_machines(hub, page, shots, docs_images):
    top = page.locator("#jp-top-panel")
    top.get_by_text(re.compile(r"CPU: [\d.]+ of")).wait_for()
    top.locator(".pangeohub-disk").get_by_text(re.compile(r"of [\d.]+ GiB")).wait_for()
    top.locator(".pangeohub-scratch").get_by_text("Scratch:").wait_for()
    page.locator(".jp-Launcher").first.wait_for()  # the page as a person sees it, settled
    page.locator("#filebrowser").get_by_text("shared", exact=True).wait_for()
    page.screenshot(path=shots / "3-top-bar.png")
    page.screenshot(path=docs_images / "inside" / "top-bar.png")
    text = " ".join(top.inner_text().split())
    # the profile's 1536M, not the machine's memory; the server's 2 GiB disk, not the
    # host's; in the picker's units (GiB), not MB and GB
    assert re.search(r"Mem: [\d.]+ of 1\.5 GiB", text), text
    disk = re.search(r"Disk: [\d.]+ of ([\d.]+) GiB", text)
    assert disk and 1.5 < float(disk.group(1)) <= 2, text
    status = " ".join(page.locator("#jp-main-statusbar").inner_text().split())
    assert not re.search(r"\d ?(MB|GB)\b", text + status), (text, status)
    # CPU as cores of the profile's 1, not of the machine's count, and only once
    assert re.search(r"CPU: \d+\.\d\d of 1 core\b", text), text
    assert text.count("CPU:") == 1 and "cores" not in text, text
    # at rest nothing is red (jupyter-resource-usage#107 made its CPU warning always on),
    # and the bars show a server at rest
    assert page.evaluate(RED_JS) == [], (page.evaluate(RED_JS), status)
    fills = page.evaluate(BAR_FILLS_JS)
    assert len(fills) == 2 and max(fills) < 0.5, fills
    # where am I: the server's own scratch location, as $PANGEO_SCRATCH holds it
    scratch = top.locator(".pangeohub-scratch").inner_text().replace("\u200e", "")  # marks
    scratch = " ".join(scratch.split())
    assert re.search(rf"Scratch: \S+{USER}/?$", scratch), scratch
    # the facts behind it are the owner's only, like every API of the server
    anonymous = requests.get(
        f"{hub.url}/user/{USER}/{SERVER}/pangeohub/whereami", allow_redirects=False, timeout=10
    )
    assert anonymous.status_code in (302, 403), anonymous.status_code


# the Lab's news setting as the Lab reads it (the server puts overrides in the schema)
NEWS_SETTING_JS = """async () => {
  const base = JSON.parse(document.getElementById("jupyter-config-data").textContent).baseUrl;
  const xsrf = (document.cookie.match(/_xsrf=([^;]+)/) || [])[1] || "";
  const url = base + "lab/api/settings/@jupyterlab/apputils-extension:notification";
  const response = await fetch(url, {headers: {"X-XSRFToken": xsrf}});
  return (await response.json()).schema.properties.fetchNews.default;
}"""


def test_no_bar_is_drawn_before_its_reading_and_no_news_prompt(hub, page):
    """A bar shows a reading, never a full track before the first one: the Lab's later
    readings are held, so what is drawn is what the first one said (or nothing)."""
    lab = page.context.new_page()
    readings = []

    def first_readings_only(route):
        readings.append(route.request.url)
        if len(readings) <= 3:  # one for each item that polls, at most
            route.continue_()
        # later ones are never answered

    lab.route(re.compile(r".*/api/metrics/v1.*"), first_readings_only)
    try:
        lab.goto(f"{hub.url}/user/{USER}/{SERVER}/lab")
        lab.locator("#jp-top-panel").get_by_text(re.compile("Mem:")).wait_for()
        lab.locator("#jp-top-panel").get_by_text(re.compile("Disk:")).wait_for()
        fills = lab.evaluate(BAR_FILLS_JS)
        assert fills and max(fills) < 0.5, fills
        # JupyterLab's "official Jupyter news" prompt is switched off (its setting, as the
        # Lab reads it; the main page, open for a while, shows no prompt)
        assert lab.evaluate(NEWS_SETTING_JS) == "false"
        assert "Jupyter news" not in page.locator("body").inner_text()
    finally:
        lab.close()


def test_shared_file_opens_and_a_write_is_refused(hub, page, shots, docs_images):
    shared = shared_dir(hub)
    with open(f"{shared}/catalogue.txt", "w") as f:  # the admin, on the hub's machine
        f.write(SHARED_TEXT + "\n")
    browser = open_sidebar(page, "filebrowser")
    browser.get_by_text("shared", exact=True).dblclick()
    browser.get_by_text("catalogue.txt").dblclick()
    editor = page.locator(".jp-FileEditor .cm-content").first
    editor.get_by_text(SHARED_TEXT).wait_for()
    page.get_by_text("file is read-only").wait_for()  # the Lab says so at once
    editor.click()
    page.keyboard.press("End")
    page.keyboard.type(" Edited.")
    # saving it anyway, as the Lab would (its contents API), and adding a file: refused
    save = page.evaluate(SAVE_JS, {"path": "shared/catalogue.txt", "text": "Edited."})
    add = page.evaluate(SAVE_JS, {"path": "shared/mine.txt", "text": "Mine."})
    page.screenshot(path=shots / "4-shared-read-only.png")
    page.screenshot(path=docs_images / "inside" / "shared.png")
    for status, message in (save, add):
        assert status == 403 and "Permission denied" in message, (status, message)
    with open(f"{shared}/catalogue.txt") as f:
        assert f.read() == SHARED_TEXT + "\n"
    assert not os.path.exists(f"{shared}/mine.txt")
    # close the edited tab without saving, so later pages do not ask
    page.locator(".lm-DockPanel-tabBar .lm-mod-current .lm-TabBar-tabCloseIcon").click()
    page.get_by_role("button", name=re.compile("Discard|Don.t Save")).click()
    page.locator(".jp-Dialog").wait_for(state="detached")


CLUSTERS_IN_VIEW_JS = """() => {
  const tab = document.querySelector(".dask-DaskSidebar");
  const list = tab.querySelector(".dask-DaskClusterManager").getBoundingClientRect();
  const box = tab.getBoundingClientRect();
  return tab.scrollHeight <= tab.clientHeight + 1 && list.top >= box.top
    && list.bottom <= box.bottom + 1 && list.height > 100;
}"""


def test_clusters_panel_makes_a_gateway_cluster_and_its_dashboard_renders(
    hub, page, shots, docs_images
):
    panel = open_sidebar(page, "dask-dashboard-launcher")
    panel.get_by_role("button", name=re.compile("NEW")).click()
    item = panel.locator(".dask-ClusterListingItem").first
    item.wait_for(timeout=90_000)
    # the listing item appears first; its dashboard link once the cluster reports one
    item.locator(".dask-ClusterListingItem-link a[href]").wait_for(timeout=90_000)
    link = item.locator(".dask-ClusterListingItem-link a").get_attribute("href")
    assert link.startswith("/services/dask-gateway/clusters/") and link.endswith("/status")
    assert "gateway://" in item.inner_text()  # a Gateway cluster, not a LocalCluster
    # a new cluster has no worker yet, and says how to get some
    hint = item.locator(".pangeohub-scale-hint")
    assert "press SCALE" in hint.inner_text(), item.inner_text()
    item.click()
    # the dashboard's address reads as the cluster's own id (a UUID), not u-u-i-d-<name>
    url = panel.locator("input").first.input_value()
    assert re.fullmatch(r"dask/dashboard/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", url), url
    page.get_by_role("button", name="Task Stream").click()
    frame = page.frame_locator(".dask-DaskDashboard iframe, iframe").first
    frame.locator("canvas").first.wait_for(timeout=60_000)  # bokeh drew the plot
    # with the 33 plot buttons listed, the cluster list keeps its own share of the tab:
    # the tab does not scroll as one (clusters below the buttons), the list is in view
    tab = page.locator(".dask-DaskSidebar")
    sizes = tab.evaluate("tab => [tab.scrollHeight, tab.clientHeight]")
    assert page.evaluate(CLUSTERS_IN_VIEW_JS), f"the Dask tab scrolls as one: {sizes}"
    page.screenshot(path=shots / "5-dask-task-stream.png")
    page.screenshot(path=docs_images / "inside" / "dask.png")
    # a cluster started in code (GatewayCluster() in a notebook, here the same client in
    # this process with the person's own token) shows in the panel too
    with gateway_as(hub, page) as gateway:
        name = gateway.submit()
        try:
            panel.locator(".dask-ClusterListingItem-title", has_text=name).wait_for()
            page.screenshot(path=shots / "5b-dask-cluster-from-code.png")
        finally:
            gateway.stop_cluster(name)
    # cluster.dashboard_link, as a notebook prints it, opens in the browser through the hub
    dashboard = page.context.new_page()
    dashboard.goto(f"{hub.url}{link}")
    dashboard.locator("canvas").first.wait_for(timeout=60_000)
    dashboard.screenshot(path=shots / "6-dask-dashboard-link.png")
    dashboard.close()


def servers_of(hub, page) -> dict:
    """The signed-in person's running servers, as the hub's API lists them."""
    return page.request.get(f"{hub.url}/hub/api/users/{USER}").json()["servers"]


def test_someone_elses_dashboard_is_refused_on_a_page_like_the_hubs(hub, page, shots):
    with gateway_as(hub, page) as gateway:
        [cluster] = gateway.list_clusters()  # the panel's, still running
    link = cluster.dashboard_link  # as the notebook prints it, through the hub
    link = link if link.startswith("http") else f"{hub.url}{link}"
    context = page.context.browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        other = context.new_page()
        other.goto(f"{hub.url}/hub/login")
        sign_in(other, hub, OTHER)
        other.wait_for_url(re.compile(r".*/hub/(spawn|home).*"))
        response = other.goto(link)
        assert response.status == 403
        other.locator(".error h1").wait_for()
        other.screenshot(path=shots / "6b-dask-dashboard-refused.png")
        assert "only their own" in other.locator(".error").inner_text()
        # the hub's look: its stylesheet applied, its logo shown, a way back
        styled = other.evaluate(
            """() => getComputedStyle(document.querySelector("nav.navbar")).display === "flex"
              && document.querySelector("img.jpy-logo").naturalWidth > 0"""
        )
        assert styled, other.content()
        assert other.get_by_role("link", name="Back to the hub").get_attribute("href") == (
            "/hub/home"
        )
    finally:
        context.close()


NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "gateway-cluster",
            "metadata": {},
            "outputs": [],
            "source": "from dask_gateway import GatewayCluster\n"
            "cluster = GatewayCluster()\n"
            "cluster",
        }
    ],
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3"}},
    "nbformat": 4,
    "nbformat_minor": 5,
}
SAVE_NOTEBOOK_JS = SAVE_JS.replace('type: "file", format: "text"', 'type: "notebook"')


def test_gateway_cluster_in_a_notebook_shows_its_scale_and_adapt_widget(
    hub, page, shots, docs_images
):
    """GatewayCluster() with no argument, as on Pangeo Cloud: the cluster's widget with
    manual and adaptive scaling (ipywidgets in the server's environment)."""
    status, body = page.evaluate(SAVE_NOTEBOOK_JS, {"path": "dask.ipynb", "text": NOTEBOOK})
    assert status in (200, 201), body
    page.goto(f"{hub.url}/user/{USER}/{SERVER}/lab/tree/dask.ipynb")
    cell = page.locator(".jp-Notebook .jp-Cell").first
    cell.wait_for()
    status = page.locator("#jp-main-statusbar")
    status.get_by_text(re.compile(r"Python 3.*\| Idle")).wait_for(timeout=60_000)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")
    cell.locator(".jp-InputPrompt", has_text=re.compile(r"\[[*1]\]")).wait_for()
    output = cell.locator(".jp-OutputArea-output")
    output.get_by_text("Adaptive Scaling").wait_for(timeout=90_000)
    output.get_by_text("Manual Scaling").click()
    output.get_by_role("button", name="Scale").wait_for()
    page.screenshot(path=shots / "5c-dask-widget.png")
    page.screenshot(path=docs_images / "inside" / "dask-widget.png")
    assert "GatewayCluster" in output.inner_text(), output.inner_text()


def hub_xsrf(page) -> str:
    cookies = page.context.cookies()
    return next(c["value"] for c in cookies if c["name"] == "_xsrf" and c["path"] == "/hub/")


def gateway_as(hub, page):
    """The dask-gateway client a notebook uses, with a token of the signed-in person."""
    from dask_gateway.auth import JupyterHubAuth

    made = page.request.post(
        f"{hub.url}/hub/api/users/{USER}/tokens",
        headers={"X-XSRFToken": hub_xsrf(page)},
        data={"note": "browser test: a cluster from code", "expires_in": 600},
    )
    assert made.ok, made.text()
    auth = JupyterHubAuth(api_token=made.json()["token"])
    return closing(new_gateway(address=f"{hub.url}/services/dask-gateway", auth=auth))


def test_home_page_shows_each_servers_profile_disk_and_the_limit(hub, page, shots, docs_images):
    page.goto(f"{hub.url}/hub/home")
    row = page.locator(f"tr[data-server-name={SERVER}]")
    row.wait_for()
    page.screenshot(path=shots / "7-home.png", full_page=True)
    page.screenshot(path=docs_images / "inside" / "home.png")
    # the name rule where the name is typed, in the words of the refusals, and no longer
    # name than it allows can be typed
    name = page.locator(".new-server-name")
    rule = " ".join(page.locator(".pangeo-name-rule").inner_text().split())
    assert "Use at most 20 characters: lowercase letters, digits and single hyphens" in rule
    assert name.get_attribute("maxlength") == "20"
    assert name.get_attribute("aria-describedby") == "pangeo-name-rule"
    name.fill("")
    name.press_sequentially("a-name-of-25-characters-x")
    assert name.input_value() == "a-name-of-25-charact"  # 20 characters
    name.fill("")
    assert "Climate Large" in row.locator(".pangeo-profile").inner_text()
    assert row.locator(".pangeo-disk").inner_text().strip() == "2 GiB"
    assert row.locator(".pangeo-state").inner_text().strip() == "running"
    default = page.locator("tr[data-server-name='']")
    assert "Small" in default.locator(".pangeo-profile").inner_text()  # its next start
    assert default.locator(".pangeo-state").inner_text().strip() == "stopped"
    limit = " ".join(page.locator(".pangeo-limit").inner_text().split())
    assert "3 named servers" in limit and "2 left" in limit, limit


def test_picker_pre_selects_the_previous_choice_and_refuses_a_forged_one(hub, page, shots):
    xsrf = hub_xsrf(page)
    forged = page.request.post(
        f"{hub.url}/hub/spawn/{USER}/forged",
        form={"profile": "oceans", "_xsrf": xsrf},
        max_redirects=0,
    )
    assert forged.status == 403, forged.status
    body = html.unescape(forged.text())
    assert "You may not use the profile 'oceans'" in body, re.findall(r"<p>.*?</p>", body, re.S)
    assert "Traceback" not in body

    stopped = page.request.delete(
        f"{hub.url}/hub/api/users/{USER}/servers/{SERVER}", headers={"X-XSRFToken": xsrf}
    )
    assert stopped.status in (202, 204)
    deadline = time.monotonic() + 60
    while SERVER in servers_of(hub, page):
        assert time.monotonic() < deadline, "the server did not stop within 60 s"
        time.sleep(0.5)
    page.goto(f"{hub.url}/hub/spawn/{USER}/{SERVER}")
    large = page.get_by_role("radio", name=re.compile("Climate Large"))
    large.wait_for()
    page.screenshot(path=shots / "8-picker-previous-choice.png")
    assert large.is_checked()
    # keyboard: from the chosen profile, an arrow key chooses the other one
    large.focus()
    page.keyboard.press("ArrowUp")
    assert page.get_by_role("radio", name=re.compile("Small")).is_checked()
    assert page.locator("input[name=profile]:checked").get_attribute("value") == "small"


def test_a_writer_group_member_writes_to_the_shared_directory(hub):
    """c.SharedData.writer_group: the server of a member (an admin's account, added with
    gpasswd as docs/inside.md says) writes through the contents API, while the person's
    writes above were refused (not a member)."""
    if not hub.isolated:
        pytest.skip("as an ordinary account every server is the hub's account: no groups")
    from pangeohub.isolation.accounts import account_name

    session = hub.login(ADMIN)
    account = account_name("jupyter-", ADMIN)

    def start():
        started = hub.api(session, "post", f"/users/{ADMIN}/server")
        assert started.status_code in (201, 202), started.text
        hub.wait_for_server(session, ADMIN)

    start()  # makes her account
    if account not in grp.getgrnam(WRITERS).gr_mem:  # a killed run may have added it
        subprocess.run(["gpasswd", "-a", account, WRITERS], check=True, capture_output=True)
        hub.api(session, "delete", f"/users/{ADMIN}/server")
        hub.wait_for_stop(session, ADMIN)
        start()  # a start picks up the group
    token = hub.api(session, "post", f"/users/{ADMIN}/tokens", json={"expires_in": 600})
    headers = {"Authorization": f"token {token.json()['token']}"}
    url = f"{hub.url}/user/{ADMIN}/api/contents/shared/from-a-curator.txt"
    body = {"type": "file", "format": "text", "content": "Added by a curator."}
    try:
        put = session.put(url, json=body, headers=headers, timeout=30)
        assert put.status_code == 201, (put.status_code, put.text)
        with open(f"{shared_dir(hub)}/from-a-curator.txt") as f:
            assert f.read() == "Added by a curator."
    finally:
        hub.api(session, "delete", f"/users/{ADMIN}/server")
        hub.wait_for_stop(session, ADMIN)


def test_ctrl_c_stops_clusters_then_services_quickly_and_quietly(hub, page):
    """Ctrl-C in the hub's terminal (SIGINT to its process group): every server stops
    first, its Dask clusters with it (the hub tells the gateway, which is still up), then
    the services; no traceback and nothing killed the hard way. Last: it stops the hub."""
    xsrf = hub_xsrf(page)
    server = "last"  # a server of its own: a fresh disk, whatever ran before
    started = page.request.post(
        f"{hub.url}/hub/api/users/{USER}/servers/{server}",
        headers={"X-XSRFToken": xsrf},
        data={"profile": "small"},
    )
    assert started.status in (201, 202), started.text()
    deadline = time.monotonic() + 60
    while not servers_of(hub, page).get(server, {}).get("ready"):
        assert time.monotonic() < deadline, "the server did not start within 60 s"
        time.sleep(0.5)
    with gateway_as(hub, page) as gateway:  # GatewayCluster() in the server's notebook
        options = gateway.cluster_options()
        options.server = f"/{server}"
        cluster = gateway.submit(cluster_options=options)
        deadline = time.monotonic() + 90
        while (status := gateway.get_cluster(cluster).status.name) != "RUNNING":
            assert status in ("PENDING", "STARTING"), f"the cluster is {status}"
            assert time.monotonic() < deadline, "the cluster did not start within 90 s"
            time.sleep(0.5)
    # the server answers a request (its start-up over) before Ctrl-C comes; its answer
    # to a browser without the server's own cookie yet is a refusal, which will do
    answered = page.request.get(f"{hub.url}/user/{USER}/{server}/api/status", max_redirects=0)
    assert answered.status < 500, answered.text()
    log_start = hub.log_path.stat().st_size
    os.killpg(hub.proc.pid, signal.SIGINT)
    try:  # a bound on the wait, not a measure: here it takes about 3 s
        hub.proc.wait(60)
    except subprocess.TimeoutExpired:
        processes = subprocess.run(
            ["ps", "-eo", "pid,ppid,user:24,stat,wchan:24,etime,args"],
            capture_output=True,
            text=True,
        ).stdout
        pytest.fail(f"the hub was still stopping 60 s after Ctrl-C:\n{hub.log_tail()}\n"
                    f"{processes}")  # fmt: skip
    with open(hub.log_path, errors="replace") as f:
        f.seek(log_start)
        log = f.read()
    assert hub.proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log, log
    assert "did not answer" not in log and "never died" not in log, log
    assert "Unexpected failure" not in log, log  # the gateway's proxy stopped before it
    told = log.find(f"Stopping {USER}'s clusters of server /{server}: ['{cluster}']")
    services_stop = re.search(r"Cleaning up \d+ services", log)
    assert services_stop and 0 <= told < services_stop.start(), log  # told while it was up
