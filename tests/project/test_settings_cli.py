"""Issue 31: every pangeohub setting is listed from the command line (``pangeohub-settings``),
and the docs point there."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from pangeohub.settings_cli import own_settings, pangeohub_classes

REPO = Path(__file__).resolve().parents[2]
# The parts issue 31 names, each by a class that carries its settings.
PARTS = [
    "PangeoPolicy",
    "ScratchService",
    "S3ScratchBackend",
    "GatewayService",
    "GatewayPolicy",
    "CullingPolicy",
    "Isolation",
    "BinderLauncher",
    "SharedData",
    "HomePage",
    "ProfilePicker",
    "LaunchLink",
    "PangeoLocalSpawner",
    "GitHubTeamsAuthenticator",
]


def settings(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pangeohub.settings_cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def listing() -> str:
    result = settings()
    assert result.returncode == 0 and not result.stderr, result.stderr[-2000:]
    return result.stdout


def test_every_module_is_read_and_every_own_setting_listed(listing):
    failed: list[str] = []
    classes = pangeohub_classes(failed)
    assert not failed
    assert {cls.__name__ for cls in classes} >= set(PARTS)
    for cls in classes:
        for name in own_settings(cls):
            assert f"--{cls.__name__}.{name}=" in listing, f"{cls.__name__}.{name} not listed"


def test_a_setting_is_listed_with_its_help_and_default(listing):
    entry = listing.split("--PangeoPolicy.named_server_limit=<Int>\n", 1)[1].split("\n--")[0]
    assert "Named servers a user may have" in entry and "Default: 5" in entry


def test_a_word_narrows_the_listing():
    result = settings("scratch")
    assert result.returncode == 0
    assert "--ScratchService.enabled=" in result.stdout
    assert "PangeoPolicy" not in result.stdout


def test_help_all_is_traitlets_own_listing():
    result = settings("--help-all")
    assert result.returncode == 0
    assert "--CullingPolicy.timeout=" in result.stdout and "--Spawner.cmd=" in result.stdout


def test_installed_as_a_command_and_named_by_the_docs():
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    scripts = setup["options.entry_points"]["console_scripts"]
    assert "pangeohub-settings = pangeohub.settings_cli:main" in scripts
    for page in ("README.md", "docs/reference.md", "docs/policies.md"):
        assert "pangeohub-settings" in (REPO / page).read_text(), page


def test_the_reference_page_documents_every_listed_class():
    reference = (REPO / "docs" / "reference.md").read_text()
    for cls in pangeohub_classes():
        assert f".{cls.__name__}\n" in reference, f"docs/reference.md lacks {cls.__name__}"
