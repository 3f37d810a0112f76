"""Helpers of the launch tests on one machine: following the build stream (with an API
token, or as a browser does after confirming), running code in a server's kernel, and
where the hub keeps its environments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

from tests.hubprocess import HubProcess
from tests.kernel import Kernel

BUILD_MEMORY = 384 * 2**20  # c.BinderBuilder.mem_limit of the binder tests' hub
BUILD_DISK = 256 * 2**20  # its c.BinderBuilder.max_size: the disk one build writes on


def token_for(hub, session, name):
    return hub.api(session, "post", f"/users/{name}/tokens", json={}).json()["token"]


def api_token(hub, session) -> str:
    """A token of the session's person (all their scopes), as a script would use."""
    name = hub.api(session, "get", "/user").json()["name"]
    return token_for(hub, session, name)


def follow(url: str, *, session=None, headers=None, timeout: float = 180, events=None):
    """Follow a build event stream until ``ready`` or ``failed``; (status, events or the
    error body). ``events``: a list to append each event to as it arrives."""
    get = session.get if session is not None else requests.get
    events = [] if events is None else events
    with get(url, stream=True, timeout=timeout, headers=headers or {}) as response:
        if response.status_code != 200:
            return response.status_code, response.json()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data: "):
                events.append(json.loads(line[len("data: ") :]))
                if events[-1]["phase"] in ("ready", "failed"):
                    break
    return 200, events


def launch(hub, session, spec: str, query: str = "", timeout: float = 180, events=None):
    """Launch through the build API with the person's API token (the programmatic path:
    no confirmation page); (status, events or error body)."""
    headers = {"Authorization": f"token {api_token(hub, session)}"}
    url = f"{hub.url}/hub/api/binder/build/{spec}{query}"
    return follow(url, headers=headers, timeout=timeout, events=events)


def stream_url(page_html: str) -> str | None:
    """The build stream a launch page follows, if the page follows one."""
    found = re.search(r"new EventSource\((\"[^\"]*\")\)", page_html)
    return json.loads(found.group(1)) if found else None


def confirm(hub, session, spec: str, query: str = "") -> requests.Response:
    """Press the confirmation page's button: a POST with the hub's XSRF token."""
    xsrf = session.cookies.get("_xsrf", path="/hub/")
    return session.post(f"{hub.url}/hub/v2/{spec}{query}", data={"_xsrf": xsrf}, timeout=30)


def run_in(hub, session, name, server, code, timeout: float = 150):
    kernel = Kernel(f"{hub.url}/user/{name}/{server}/", token_for(hub, session, name))
    try:
        result = kernel.run(code, timeout=timeout)
    finally:
        kernel.close()
    assert result.error is None, result.error
    return result.output.strip()


def hub_env_root(hub: HubProcess) -> Path:
    from tests.isolation_cleanup import hub_id

    if hub.isolated:
        return Path("/srv/pangeohub") / hub_id(hub.state_dir) / "binder" / "envs"
    return hub.state_dir / "binder" / "envs"
