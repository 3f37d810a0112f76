"""One machine without isolation (a laptop, or c.Isolation.enabled = False): every server
runs as the hub's account, the hub says so, and deleting a server still never follows a
link a person's code put in its place (issue 13, case 6).

Isolation is switched off here on purpose: this is the mode a hub started by an ordinary
account runs in, and the only one where a person's code can replace their server's
directory with a link to someone else's.
"""

from __future__ import annotations

import time

import pytest

from tests.isolation.test_isolation_hub import Person

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from tests.hubprocess import HubProcess

    hub = HubProcess(tmp_path_factory.mktemp("shared"), extra_config="c.Isolation.enabled = False")
    hub.start()
    yield hub
    hub.stop()


def test_the_hub_says_people_are_not_isolated(hub):
    lines = [line for line in hub.log_path.read_text().splitlines() if "NOT isolated" in line]
    assert len(lines) == 1, lines
    assert "every server runs as this account" in lines[0]


def test_deleting_a_server_replaced_by_a_link_spares_the_link_target(hub):
    katherine = Person(hub, "katherine")
    katherine.run("open('thesis.txt', 'w').write('years of work')")
    target = hub.server_home("katherine")
    grace = Person(hub, "grace", "one")
    # Grace's own code swaps her server's directory for a link to Katherine's.
    attack = f"""
        import os, shutil
        home = os.environ["HOME"]
        os.chdir("/")
        shutil.rmtree(home)
        os.symlink({str(target)!r}, home)
        print(os.path.islink(home))
    """
    assert grace.run(attack).output.strip() == "True"
    response = hub.api(grace.session, "delete", "/users/grace/servers/one", json={"remove": True})
    assert response.status_code in (202, 204), response.text
    deadline = time.monotonic() + 60
    while hub.server_home("grace", "one").is_symlink():
        assert time.monotonic() < deadline, "the link was not removed"
        time.sleep(0.3)
    assert (target / "thesis.txt").read_text() == "years of work"
    assert katherine.run("print(open('thesis.txt').read())").output.strip() == "years of work"
