"""pangeohub: a JupyterHub plugin bundle for research hubs of the Pangeo kind.

Every ``jupyterhub_config.py`` that runs it ends with ``pangeohub.configure(c)``.
"""

__version__ = "0.1.0"


def configure(c):
    """Wire pangeohub into the hub's final configuration ``c`` (see :mod:`pangeohub.assembly`)."""
    from .assembly import configure as _configure

    return _configure(c)
