"""Issue 31, spot 8: the README's minimal ``jupyterhub_config.py``, exactly as written
there, gives the whole named-server policy (the limit and the name rule), because
``pangeohub.configure(c)`` installs it; nothing else in the hub's configuration does."""

from __future__ import annotations

import re

import pytest

from tests.hubprocess import REPO, HubProcess

# The test's plumbing, none of it policy: where the hub listens and its proxy (the
# bundle's 00-hub.py reads the free ports HubProcess chose), and HubProcess's own file
# ($PANGEOHUB_CONFIG: the terminal the sample users' passwords are shown on).
PLUMBING = f"""\
import os

c = get_config()  # noqa
load_subconfig({str(REPO / "jupyterhub_config.d" / "00-hub.py")!r})  # noqa
load_subconfig(os.environ["PANGEOHUB_CONFIG"])  # noqa
"""


def readme_config() -> str:
    """The one ``jupyterhub_config.py`` in README.md (the block ending with configure)."""
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)
    configs = [block for block in blocks if "pangeohub.configure(c)" in block]
    assert len(configs) == 1, "README.md shows one jupyterhub_config.py"
    return configs[0]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("readme-config")
    config = workdir / "jupyterhub_config.py"
    config.write_text(PLUMBING + readme_config())
    with HubProcess(workdir, config_file=config) as hub:
        yield hub


def test_the_readme_snippet_is_used_as_written():
    snippet = readme_config()
    assert snippet.rstrip().splitlines()[-1].startswith("pangeohub.configure(c)")
    assert "named_server_limit" not in snippet and "NamedServerGate" not in snippet


def test_readme_config_refuses_a_name_past_twenty_characters(hub):
    grace = hub.login("grace")
    refused = hub.api(grace, "put", f"/users/grace/servers/{'a' * 21}", json={})
    assert 400 <= refused.status_code < 500, refused.text
    assert "not a valid server name" in refused.json()["message"]
    assert "at most 20 characters" in refused.json()["message"]
    assert hub.api(grace, "put", f"/users/grace/servers/{'a' * 20}", json={}).status_code == 201
    hub.api(grace, "delete", f"/users/grace/servers/{'a' * 20}", json={"remove": True})
    hub.wait_for_removal(grace, "grace", "a" * 20)


def test_readme_config_refuses_the_sixth_named_server(hub):
    ada = hub.login("ada")
    for n in range(1, 6):
        made = hub.api(ada, "put", f"/users/ada/servers/run{n}", json={})
        assert made.status_code == 201, made.text
    sixth = hub.api(ada, "put", "/users/ada/servers/run6", json={})
    assert 400 <= sixth.status_code < 500, sixth.text
    assert "already has 5 named servers" in sixth.json()["message"]
    servers = hub.api(ada, "get", "/users/ada?include_stopped_servers=1").json()["servers"]
    assert sorted(name for name in servers if name) == [f"run{n}" for n in range(1, 6)]


def test_readme_config_patches_jupyterhub_server_api(hub):
    """configure(c) also made pangeohub's changes to JupyterHub: a display name is held
    to the name length where JupyterHub does not ask the gate, and a bad PATCH is a 400."""
    grace = hub.login("grace")
    assert hub.api(grace, "put", "/users/grace/servers/mine", json={}).status_code == 201
    long_display = hub.api(
        grace, "patch", "/users/grace/servers/mine", json={"display_name": "d" * 40}
    )
    assert long_display.status_code == 400, long_display.text
    unknown = hub.api(grace, "patch", "/users/grace/servers/mine", json={"colour": "red"})
    assert unknown.status_code == 400 and "no field 'colour'" in unknown.json()["message"]
