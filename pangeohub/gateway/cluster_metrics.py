"""Running Dask clusters, their workers and cores, by user and by group (Prometheus)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from ..metrics import exposition


def cluster_metrics(clusters: list[tuple[str, set[str], int, dict]]) -> tuple[bytes, str]:
    """Prometheus text for (user, groups, workers, cluster config) of each running cluster."""
    registry = CollectorRegistry()
    gauges = {
        (scope, what): Gauge(
            f"pangeohub_dask_{what}_by_{scope}",
            f"Running Dask Gateway {what} by {scope}"
            + (" (a cluster counts in each of its user's groups)." if scope == "group" else "."),
            [scope],
            registry=registry,
        )
        for scope in ("user", "group")
        for what in ("clusters", "workers", "cores")
    }
    for user, groups, workers, config in clusters:
        cores = config.get("scheduler_cores", 0) + workers * config.get("worker_cores", 0)
        for scope, keys in (("user", [user]), ("group", sorted(groups) or ["none"])):
            for key in keys:
                gauges[scope, "clusters"].labels(key).inc()
                gauges[scope, "workers"].labels(key).inc(workers)
                gauges[scope, "cores"].labels(key).inc(cores)
    return exposition(registry)
