"""Inside a server: what people coming from Pangeo hubs expect to find in JupyterLab.

- :mod:`.dashboard`: the Dask extension's dashboard panels for Gateway clusters, through
  the gateway's own address (a Jupyter Server extension);
- :mod:`.shared`: the shared data directory every server sees read-only;
- :mod:`.whereami`: the server's own facts (CPU limit, scratch location) for the top bar
  items of pangeohub's labextension (``jupyter-data/labextensions/pangeohub-lab``);
- the server-side settings (``jupyter-config/jupyter_server_config.d/pangeohub-lab.json``):
  jupyter-resource-usage showing the server's own limits and disk, not the machine's.
"""
