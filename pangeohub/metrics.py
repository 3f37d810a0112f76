"""pangeohub's Prometheus metrics (prometheus-client), beside JupyterHub's own.

In the hub process they register with prometheus-client's default registry, which
JupyterHub serves at ``/hub/metrics``. The services are separate processes and serve
their own: the scratch service at ``/services/scratch/metrics``, the Dask Gateway at
``/services/dask-gateway/api/pangeohub/metrics`` (with a token: it names users), the
culler on ``c.CullingPolicy.metrics_port``. docs/metrics.md lists each with a PromQL line.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Gauge
from prometheus_client import generate_latest as _generate

SERVERS_RUNNING = Gauge(
    "pangeohub_servers_running",
    "Servers running now, by the profile they run.",
    ["profile"],
)


class RunningCount:
    """Keeps one server's share of ``pangeohub_servers_running``: counted once while it
    runs, under the profile it started with, and taken off when it stops."""

    def __init__(self):
        self.profile: str | None = None

    def running(self, profile: str | None) -> None:
        if self.profile is None:
            self.profile = profile or "unknown"
            SERVERS_RUNNING.labels(self.profile).inc()

    def stopped(self) -> None:
        if self.profile is not None:
            SERVERS_RUNNING.labels(self.profile).dec()
            self.profile = None


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The registry in Prometheus' text format, and its content type."""
    return _generate(registry), CONTENT_TYPE_LATEST
