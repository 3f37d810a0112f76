"""Environments: the one-machine images servers and their Dask workers run in.

A profile names an environment (on Kubernetes, its ``image``). Each is a virtual
environment built with uv from requirements the admin owns, sealed read-only and
versioned by its content (docs/environments.md).

- :mod:`.settings`: ``c.Environments``
- :mod:`.spec`: what goes into a version, and its name
- :mod:`.machine`: uv with the machine's trust store, proxy and index settings
- :mod:`.build`: building a version, once; :mod:`.seal`: making it read-only
- :mod:`.versions`: the built versions on disk, and removing unused ones
- :mod:`.servers`: a server's (and its workers') side of an environment
- :mod:`.cli`: ``pangeohub-environments`` (build, add a package, list)
- :mod:`.page`: the hub's page listing each environment's packages
"""

from .settings import Environments

__all__ = ["Environments"]
