"""Sphinx configuration for pangeohub's docs (MyST Markdown, the Jupyter convention)."""

project = "pangeohub"
author = "pangeohub contributors"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "alabaster"
myst_heading_anchors = 3
