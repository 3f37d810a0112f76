"""The scratch service's settings, shared by the hub (which starts it) and the service."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from traitlets import Bool, Int, Unicode, default
from traitlets.config import Configurable

from ..endpoints import hub_ports
from .base import ScratchBackend


class ScratchService(Configurable):
    """The scratch credential service (``c.ScratchService``): on or off, where, which backend."""

    enabled = Bool(
        True,
        help="""Run the scratch credential service and give every server (and its Dask
        workers) $PANGEO_SCRATCH. False: no scratch on this hub.""",
    ).tag(config=True)
    backend = Unicode(
        "local", help="Scratch backend: 's3', 'gcs', 'local', or 'module:Class'."
    ).tag(config=True)
    service_name = Unicode(help="This service's name in the hub (scopes refer to it).").tag(
        config=True
    )
    url = Unicode(
        help="""Where the service listens, e.g. http://127.0.0.1:10101, or http://0.0.0.0:10101
        in a Kubernetes hub pod so that user pods reach it. Default: a free loopback port
        chosen when the hub starts.""",
    ).tag(config=True)
    service_prefix = Unicode(help="URL prefix of every route, ending in '/'.").tag(config=True)
    expiry_check_seconds = Int(
        3600,
        min=1,
        help="""How often to re-verify the expiry rule (or sweep local scratch). When not
        set, the hub uses the culling schedule (c.CullingPolicy.every).""",
    ).tag(config=True)

    token_cache_seconds = Int(
        10,
        min=0,
        help="""How long the service trusts the hub's answer about a caller's token before
        asking again (HubAuth's cache_max_age, 300 s upstream). Someone who loses access at
        the hub's refresh can get credentials for at most this long after it.""",
    ).tag(config=True)

    @default("service_name")
    def _default_service_name(self):
        return os.environ.get("JUPYTERHUB_SERVICE_NAME", "scratch")

    @default("url")
    def _default_url(self):
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "")

    @default("service_prefix")
    def _default_service_prefix(self):
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{self.service_name}/")
        return prefix if prefix.endswith("/") else prefix + "/"


# What the scratch service configures (its ``classes``): the hub passes it these sections,
# each backend's (an added one's too: a subclass) and what a backend declares it makes.
SERVICE_CLASSES = [ScratchService, ScratchBackend]


def hub_side_url(listen: str, hub_connect_url: str = "") -> str:
    """How the hub and the proxy reach a service the hub runs, listening on ``listen``.

    A service listening on every address is reached where the proxy reaches the hub
    (``c.JupyterHub.hub_connect_url``'s host: the hub's Service under Zero to JupyterHub,
    whose proxy runs in a pod of its own), else on loopback."""
    parsed = urlparse(listen)
    host = parsed.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::", ""):
        host = urlparse(hub_connect_url).hostname or "127.0.0.1"
    return f"{parsed.scheme or 'http'}://{host}:{parsed.port}"


@dataclass(frozen=True)
class ScratchEndpoints:
    """Where the scratch service listens and where the hub and servers reach it."""

    listen: str  # c.ScratchService.url, else a loopback port the hub chose
    url: str  # the hub's and its proxy's way to it
    prefix: str  # its routes' prefix, ending in "/"

    @property
    def service_url(self) -> str:
        """Where servers reach it by default (``c.ScratchEnvironment.service_url``)."""
        return f"{self.url}{self.prefix}"


def scratch_endpoints(config) -> ScratchEndpoints:
    """The scratch service's endpoints on this hub, from ``config`` and :func:`hub_ports`."""
    settings = ScratchService(config=config)
    listen = settings.url or f"http://127.0.0.1:{hub_ports().scratch}"
    hub = config.JupyterHub
    base_url = hub.get("base_url", "/").rstrip("/")
    return ScratchEndpoints(
        listen=listen,
        url=hub_side_url(listen, hub.get("hub_connect_url", "")),
        prefix=f"{base_url}/services/{settings.service_name}/",
    )
