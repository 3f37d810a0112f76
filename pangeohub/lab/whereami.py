"""A Jupyter Server extension: "where am I", the server's own facts for the Lab's top bar.

``GET <server>/pangeohub/whereami`` answers (to the server's owner, like every API of the
server) with what the spawner put in the server's environment: the scratch location
(``$PANGEO_SCRATCH`` and whether its credential service answered at start), the CPU and
memory limits (``$CPU_LIMIT``, ``$MEM_LIMIT``), the profile and the shared directory.
pangeohub's small labextension (``jupyter-data/labextensions/pangeohub-lab``) shows them
in JupyterLab's top bar; code reads the same variables.

Why not upstream: jupyter-resource-usage shows CPU only as a percentage (its top bar
draws ``cpu_percent``, the limit only scales its little graph) and knows nothing of a
scratch location; no JupyterLab setting or existing extension shows an environment
variable. Enabled with pangeohub's other server settings (``pangeohub-lab.json``).
"""

from __future__ import annotations

import json
import os

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

ROUTE = "pangeohub/whereami"


def _number(environ, name: str) -> float | None:
    try:
        value = float(environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def whereami(environ=os.environ) -> dict:
    """The server's own facts, from its environment (``None`` for what it was not given)."""
    cpu = _number(environ, "CPU_LIMIT")
    memory = _number(environ, "MEM_LIMIT")
    return {
        "scratch": environ.get("PANGEO_SCRATCH") or None,
        "scratch_status": environ.get("PANGEO_SCRATCH_STATUS") or None,
        "cpu_limit": cpu,
        "mem_limit": int(memory) if memory else None,
        "cpu_count": os.cpu_count(),
        "profile": environ.get("PANGEO_PROFILE") or None,
        "shared": environ.get("PANGEO_SHARED_DIR") or None,
    }


class WhereAmIHandler(APIHandler):
    @web.authenticated
    def get(self):
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(whereami()))


def _jupyter_server_extension_points():
    return [{"module": "pangeohub.lab.whereami"}]


def _load_jupyter_server_extension(server_app) -> None:
    web_app = server_app.web_app
    route = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(".*$", [(route, WhereAmIHandler)])
