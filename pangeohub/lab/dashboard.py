"""A Jupyter Server extension: the Dask extension's dashboard panels for Gateway clusters.

dask-labextension shows a cluster from its Clusters panel through its own proxy,
``<server>/dask/dashboard/<cluster id>/<plot>``, and that proxy keeps only the host and
port of the cluster's dashboard link: it assumes the dashboard sits at the root of a
host (a LocalCluster's does). A Gateway cluster's dashboard sits under a path,
``<gateway>/clusters/<name>/``, so the upstream handler asks the gateway's root for the
plots and gets a 404. No setting of dask-labextension changes that (its front end picks
its own proxy for every link outside ``<server>/proxy/``), hence this subclass: the same
route, the same proxy, with the dashboard's path kept and the gateway reached at the
address the server already uses for its API (``DASK_GATEWAY__ADDRESS``), not at the
hub's public address, which a pod may not be able to reach.

Enabled with the rest of pangeohub's server settings through ``JUPYTER_CONFIG_PATH``
(``pangeohub-lab.json``); without dask-labextension installed it does nothing.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlparse

from jupyter_server.utils import url_path_join

CLUSTER_ID = r"(?P<cluster_id>\w+-\w+-\w+-\w+-\w+)"


def gateway_dashboard_url(link: str, public: str, internal: str) -> str:
    """Where the server reaches a dashboard whose link (as browsers see it) is ``link``:
    ``public`` (the gateway's public address) replaced by ``internal`` (its API address),
    without the trailing ``/status`` page."""
    public, internal = public.rstrip("/"), internal.rstrip("/")
    if public and internal and link.startswith(public + "/"):
        link = internal + link[len(public) :]
    elif not urlparse(link).scheme and internal:  # a path on the hub: the gateway's host
        parsed = urlparse(internal)
        link = f"{parsed.scheme}://{parsed.netloc}{link}"
    if link.endswith("/status"):
        link = link[: -len("/status")]
    return link


def _handler_class():
    from dask_labextension import dashboardhandler
    from tornado import web

    class GatewayDashboardHandler(dashboardhandler.DaskDashboardHandler):
        """dask-labextension's dashboard proxy, keeping the dashboard's path."""

        def _target(self, cluster_id: str) -> tuple[str, int, str]:
            model = dashboardhandler.manager.get_cluster(cluster_id)
            if not model or not model.get("dashboard_link"):
                raise web.HTTPError(404, f"There is no Dask cluster {cluster_id}.")
            url = gateway_dashboard_url(
                model["dashboard_link"],
                os.environ.get("DASK_GATEWAY__PUBLIC_ADDRESS", ""),
                os.environ.get("DASK_GATEWAY__ADDRESS", ""),
            )
            parsed = urlparse(url)
            if not parsed.hostname:
                raise web.HTTPError(404, f"Dask cluster {cluster_id} has no dashboard.")
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            self.host_allowlist = [parsed.hostname]
            return parsed.hostname, port, parsed.path.rstrip("/")

        def proxy(self, cluster_id, proxied_path):
            host, port, path = self._target(cluster_id)
            return super(dashboardhandler.DaskDashboardHandler, self).proxy(
                host, port, path + proxied_path
            )

        async def open(self, cluster_id, proxied_path):
            host, port, path = self._target(cluster_id)
            return await self.proxy_open(host, port, path + proxied_path)

    return GatewayDashboardHandler


HEX_NAME = re.compile(r"^[0-9a-f]{32}$")


def readable_cluster_id(name: str) -> str:
    """The Dask tab's id for the Gateway cluster ``name``: the name itself, written as a
    UUID (dask-gateway names clusters with a UUID's 32 hex digits), not
    ``u-u-i-d-<name>``.

    dask-labextension's routes take only ids of five dash-separated words (the UUID
    pattern its own clusters have; dask-labextension#272 would relax it), so
    dask-labextension-gateway 0.1 makes one by prefixing ``u-u-i-d-``, and the Dask tab
    shows ``dask/dashboard/u-u-i-d-<name>``. A name that is not 32 hex digits keeps that
    form."""
    if HEX_NAME.match(name):
        return f"{name[:8]}-{name[8:12]}-{name[12:16]}-{name[16:20]}-{name[20:]}"
    return "u-u-i-d-" + re.sub(r"[^\w]+", "", name)


def _readable_ids() -> None:
    """dask-labextension-gateway's cluster ids made readable (:func:`readable_cluster_id`)."""
    try:
        import dask_labextension_gateway
    except ImportError:
        return
    if hasattr(dask_labextension_gateway, "_cluster_id_from_name"):
        dask_labextension_gateway._cluster_id_from_name = readable_cluster_id


def _jupyter_server_extension_points():
    return [{"module": "pangeohub.lab.dashboard"}]


def _load_jupyter_server_extension(server_app) -> None:
    _readable_ids()
    try:
        handler = _handler_class()
    except ImportError:
        server_app.log.info("dask-labextension is not installed: no Dask dashboard panels.")
        return
    web_app = server_app.web_app
    route = url_path_join(
        web_app.settings["base_url"], f"dask/dashboard/{CLUSTER_ID}(?P<proxied_path>.+)"
    )
    web_app.add_handlers(".*$", [(route, handler)])
    # Tornado takes the first rule that matches; dask-labextension's own (added when it
    # loaded) must come after this one.
    rules = web_app.default_router.rules
    ours = next(rule for rule in rules if _routes_to(rule, handler))
    rules.remove(ours)
    rules.insert(0, ours)


def _routes_to(rule, handler) -> bool:
    return any(getattr(r, "target", None) is handler for r in getattr(rule.target, "rules", ()))
