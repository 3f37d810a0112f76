"""Sphinx configuration for pangeohub's docs (MyST Markdown and pydata-sphinx-theme, as
JupyterHub's own docs; the settings reference is generated from the traitlets)."""

project = "pangeohub"
author = "pangeohub contributors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "autodoc_traits"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "pydata_sphinx_theme"
html_theme_options = {"navigation_with_keys": True}
myst_heading_anchors = 3
autodoc_default_options = {"members": False}


def _pangeohub_traits() -> set[int]:
    """The traits pangeohub's own classes declare (not those they inherit upstream)."""
    from traitlets.config import Configurable

    import pangeohub.assembly  # noqa: F401 (imports every part)
    import pangeohub.auth
    import pangeohub.gateway.kubernetes
    import pangeohub.local_auth
    import pangeohub.spawner.kubernetes
    import pangeohub.spawner.local  # noqa: F401

    own, stack = set(), [Configurable]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("pangeohub."):
            own.update(id(trait) for trait in cls.class_own_traits(config=True).values())
    return own


def setup(app):
    own = _pangeohub_traits()

    def skip_upstream_traits(app, what, name, obj, skip, options):
        from traitlets import TraitType

        if isinstance(obj, TraitType) and id(obj) not in own:
            return True  # documented by JupyterHub, KubeSpawner, oauthenticator themselves
        return None

    app.connect("autodoc-skip-member", skip_upstream_traits)
