"""The gate in front of a Dask cluster's own HTTP servers on one machine.

A scheduler's dashboard and a worker's HTTP server (distributed's ``http.routes``) listen
on a loopback port with no check of who asks: any account on the machine could scan for
them and read another person's tasks, logs and data. With the dashboard guard on, the
gateway gives each scheduler and worker this gate as the first of their routes
(:mod:`.scheduler`, :mod:`.worker`): a request passes only if it carries the cluster's
key (:data:`HEADER`), which only the guard adds, after its sign-in and ownership check
(:mod:`pangeohub.gateway.dashboard`). Everything else gets a 403 saying where the
dashboard opens.

This runs in the cluster's processes, in the person's environment: it needs only
tornado and distributed. The gate is a route whose target is a tornado ``Router``: it
answers the request itself or, by finding no handler, lets distributed's routes (and
bokeh's pages and websockets after them) serve it as they would.
"""

from __future__ import annotations

import ast
import hmac
import importlib
import os

from tornado.routing import Router
from tornado.web import RequestHandler

HEADER = "X-Pangeohub-Dashboard-Key"
KEY_ENV = "PANGEOHUB_DASHBOARD_KEY"
# An admin's own ``DASK_DISTRIBUTED__<NODE>__HTTP__ROUTES``, kept behind the gate.
ROUTES_ENV = "PANGEOHUB_DASK_HTTP_ROUTES"
REFUSAL = (
    "This Dask dashboard opens through the hub only: use the link your cluster gives "
    "(cluster.dashboard_link), or the Dask panel in JupyterLab.\n"
)


class Refused(RequestHandler):
    """What a request without the cluster's key gets, whatever its method."""

    def prepare(self):
        self.set_status(403)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.finish(REFUSAL)


class Gate(Router):
    """Passes on (finds no handler for) a request with the cluster's key; refuses the rest."""

    def __init__(self, key: str | None):
        self.key = key.encode() if key else None

    def initialize(self, dask_server):
        """distributed's ``get_handlers`` gives a route whose target takes a
        ``dask_server`` its server: the gate answers through the server's application."""

    def allows(self, request) -> bool:
        given = request.headers.get(HEADER, "").encode()
        return self.key is not None and hmac.compare_digest(given, self.key)

    def find_handler(self, request, target_kwargs=None, **_):
        if self.allows(request):
            return None
        application = target_kwargs["dask_server"].http_application
        return application.get_handler_delegate(request, Refused)


def default_modules(node: str) -> list[str]:
    """distributed's own route modules of ``node`` ("scheduler" or "worker"), or the
    admin's, as the gateway passed them on."""
    given = os.environ.get(ROUTES_ENV)
    if given:
        return list(ast.literal_eval(given))
    from distributed.config import defaults

    return list(defaults["distributed"][node]["http"]["routes"])


def gated(node: str) -> list[tuple]:
    """The routes of ``node``'s modules, behind the gate (distributed prefixes each)."""
    routes: list[tuple] = [(".*", Gate(os.environ.get(KEY_ENV)), {})]
    for name in default_modules(node):
        if not name.startswith(__name__):
            routes.extend(importlib.import_module(name).routes)
    return routes


def gate_environment(env: dict, node: str, key: str) -> dict:
    """``env`` for a ``node`` ("scheduler" or "worker") process behind the gate of ``key``;
    a routes setting already in ``env`` (the admin's) stays, behind the gate."""
    variable = f"DASK_DISTRIBUTED__{node.upper()}__HTTP__ROUTES"
    env = dict(env)
    if variable in env:
        env[ROUTES_ENV] = env[variable]
    env[variable] = repr([f"{__name__}.{node}"])
    env[KEY_ENV] = key
    return env
