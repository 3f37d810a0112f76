"""Launch from a repository: BinderHub's launch links on the hub (one machine).

:mod:`.spec` reads a launch (``gh/<org>/<repo>/<ref>``, ``git/<url>/<ref>``),
:mod:`.consent` decides whether a link may build before the person confirms,
:mod:`.recipe` the repository's environment files, :mod:`.builder` builds a virtual
environment per commit with uv as a build account no person uses (:mod:`.accounts`) in a
workspace of its own (:mod:`.workspace`), which root seals through descriptors
(:mod:`.seal`), :mod:`.launcher` serves the page and the build stream and starts the
server through the REST API, :mod:`.server` runs it there.
"""

__all__ = ["BinderBuilder", "BinderLauncher"]


def __getattr__(name: str):
    """The package's classes, imported when first asked for: a build's own processes
    import :mod:`.recipe` from here and need none of the hub's modules."""
    if name == "BinderBuilder":
        from .builder import BinderBuilder

        return BinderBuilder
    if name == "BinderLauncher":
        from .launcher import BinderLauncher

        return BinderLauncher
    raise AttributeError(name)
