"""docs/architecture.md matches the code: every module and package of pangeohub is
named, and every path it names exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "pangeohub"
PAGE = (REPO / "docs" / "architecture.md").read_text()
NAMED = set(re.findall(r"`([^`\s]+)`", PAGE))


def test_every_top_level_module_and_package_is_named():
    for entry in sorted(PACKAGE.iterdir()):
        if entry.name.startswith(("_", ".")) or entry.name.endswith(".egg-info"):
            continue
        if entry.is_dir():
            name = f"pangeohub/{entry.name}/"
            assert name in NAMED or f"{entry.name}/" in NAMED, f"{name} is not described"
        elif entry.suffix == ".py":
            name = f"pangeohub/{entry.name}"
            assert name in NAMED or entry.name in NAMED, f"{name} is not described"


def test_every_module_is_named_by_its_path():
    """Every module of pangeohub, a package's included (its ``__init__`` aside), is named
    by its path under ``pangeohub/`` (a bare file name would not say which package's)."""
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(PACKAGE).as_posix()
        if f"pangeohub/{relative}" not in NAMED and relative not in NAMED:
            missing.append(f"pangeohub/{relative}")
    assert missing == [], f"not described in docs/architecture.md: {', '.join(missing)}"


def test_every_path_named_exists():
    files = {
        path.name
        for folder in ("pangeohub", "tests", "deploy", "benchmarks")
        for path in (REPO / folder).rglob("*")
        if "__pycache__" not in path.parts
    }
    for name in sorted(NAMED):
        if "/" in name and not name.startswith(("/", "<")) and "." not in name.split("/")[0]:
            candidates = [base / name for base in (REPO, REPO / "tests", PACKAGE)]
            assert any(path.exists() for path in candidates), f"{name} does not exist"
        elif re.fullmatch(r"[\w.-]+\.py", name):
            assert name in files or (REPO / name).exists(), f"{name} does not exist"


def test_the_repository_table_lists_the_top_level_folders():
    for folder in ("pangeohub", "jupyterhub_config.d", "deploy", "tests", "benchmarks", "docs"):
        assert f"`{folder}/`" in PAGE
