"""The docs name every setting an admin can set."""

from pathlib import Path

import pytest

from pangeohub.auth import GitHubTeamsAuthenticator
from pangeohub.culling import CullingPolicy
from pangeohub.local_auth import LocalGroupsAuthenticator
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
        (GitHubTeamsAuthenticator, "github-teams.md"),
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
    for name in ("quickstart", "policies", "github-teams", "culling"):
        assert name in entries and (DOCS / f"{name}.md").exists()
