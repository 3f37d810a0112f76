"""A scheduler's HTTP routes behind the gate (``distributed.scheduler.http.routes``)."""

from . import gated

routes = gated("scheduler")
