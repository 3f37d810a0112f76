"""Launch from a repository: BinderHub's launch links on the hub (one machine).

:mod:`.spec` reads a launch (``gh/<org>/<repo>/<ref>``, ``git/<url>/<ref>``),
:mod:`.consent` decides whether a link may build before the person confirms,
:mod:`.recipe` the repository's environment files, :mod:`.builder` builds a virtual
environment per commit with uv as a build account no person uses (:mod:`.accounts`) in a
workspace of its own (:mod:`.workspace`), which root seals through descriptors
(:mod:`.seal`), :mod:`.launcher` serves the page and the build stream and starts the
server through the REST API, :mod:`.server` runs it there.
"""

from .builder import BinderBuilder
from .launcher import BinderLauncher

__all__ = ["BinderBuilder", "BinderLauncher"]
