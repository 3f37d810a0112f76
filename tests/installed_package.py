"""A one-module package installed the way pip installs one (its module, its metadata and
its entry point on ``sys.path``), for tests of parts added by another package."""

from __future__ import annotations

import textwrap
from pathlib import Path


def install_module(tmp_path: Path, monkeypatch, module: str, source: str, entry_point: str):
    """Install ``module``.py from ``source`` with the one entry point ``entry_point``
    (``[group] name = module:Class``) under ``tmp_path/site``, put it on ``sys.path`` and
    the hub's state in ``tmp_path/state``."""
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    name = module.replace("_", "-")
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    group, entry = entry_point.split(" ", 1)
    (info / "entry_points.txt").write_text(f"{group}\n{entry}\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PANGEOHUB_STATE_DIR", str(tmp_path / "state"))
