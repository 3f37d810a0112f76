"""The docs name every setting an admin can set."""

import subprocess
import sys
from pathlib import Path

import pytest

from pangeohub.auth import GitHubTeamsAuthenticator
from pangeohub.culling import CullingPolicy
from pangeohub.environments import Environments
from pangeohub.isolation import Isolation
from pangeohub.lab.home import HomePage
from pangeohub.lab.launch_link import LaunchLink
from pangeohub.lab.picker import ProfilePicker
from pangeohub.lab.shared import SharedData
from pangeohub.local_auth import LocalGroupsAuthenticator
from pangeohub.operate.https import HTTPS
from pangeohub.policy import PangeoPolicy
from pangeohub.spawner import PangeoLocalSpawner, PangeoSpawnerMixin

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize(
    "cls, page",
    [
        (PangeoPolicy, "policies.md"),
        (PangeoSpawnerMixin, "policies.md"),
        (PangeoLocalSpawner, "policies.md"),
        (LocalGroupsAuthenticator, "policies.md"),
        (CullingPolicy, "culling.md"),
        (Environments, "environments.md"),
        (Isolation, "isolation.md"),
        (GitHubTeamsAuthenticator, "github-teams.md"),
        (SharedData, "inside.md"),
        (ProfilePicker, "inside.md"),
        (HomePage, "inside.md"),
        (LaunchLink, "inside.md"),
        (HTTPS, "operate/https.md"),
    ],
)
def test_every_setting_is_documented(cls, page):
    text = (DOCS / page).read_text()
    for name, trait in cls.class_own_traits(config=True).items():
        assert f"`{name}`" in text, f"{cls.__name__}.{name} is missing from docs/{page}"
        assert trait.help, f"{cls.__name__}.{name} has no help="


def test_toctree_pages_exist():
    index = (DOCS / "index.md").read_text()
    entries = [line.strip() for line in index.splitlines() if line and line == line.strip()]
    for name in ("quickstart", "policies", "isolation", "github-teams", "culling"):
        assert name in entries and (DOCS / f"{name}.md").exists()


def test_docs_build_without_a_warning(tmp_path):
    """The guides and the settings reference generated from the traitlets (autodoc-traits)."""
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    reference = (tmp_path / "reference.html").read_text()
    assert "admitted_teams" in reference and "expiry_check_seconds" in reference
    assert "oauth_callback_url" not in reference  # upstream's settings stay upstream's


def test_the_binder_pages_example_server_name_is_the_one_a_launch_makes():
    """docs/binder.md's example is what the launcher names pangeo-data/pangeo-tutorial's
    commit 1a2b3c4..., within the default name rule."""
    from pangeohub.binder.launcher import BinderLauncher
    from pangeohub.binder.spec import parse_spec

    repo = parse_spec("gh", "pangeo-data/pangeo-tutorial/main")
    name = BinderLauncher().server_name(repo, "1a2b3c4d5e6f")
    assert len(name) <= PangeoPolicy().server_name_max_length
    assert f"`{name}`" in (DOCS / "binder.md").read_text()
