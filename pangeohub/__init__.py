"""pangeohub: a JupyterHub plugin bundle for research hubs of the Pangeo kind."""

__version__ = "0.1.0"
