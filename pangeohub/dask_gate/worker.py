"""A worker's HTTP routes behind the gate (``distributed.worker.http.routes``)."""

from . import gated

routes = gated("worker")
