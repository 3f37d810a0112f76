"""The hub's side of Dask Gateway: the service, every server's settings, the stop hook.

``wire_gateway(c)`` (run once the whole hub config is loaded) registers
dask-gateway-server as a hub-managed service, grants users the scope to use it, gives
every server the ``DASK_GATEWAY__*`` settings that make ``GatewayCluster()`` work with
no arguments, and stops a server's clusters when the server stops.
"""

from __future__ import annotations

import json
import os
import sys

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Bool, Callable, Float, Int, List, Unicode, default
from traitlets.config import Configurable

from ..hubconfig import (
    add_environment_hook,
    config_list,
    free_port,
    grant_scopes,
    register_service,
)
from ..spawner.mixin import collect_environment
from ..state import StateDirectory
from .backend import SERVER_ROUTE, STOP_ROUTE


def server_tag(name: str) -> str:
    """How a cluster records the hub server it came from: "/" or "/<name>"."""
    return "/" + (name or "")


class GatewayService(Configurable):
    """Where the gateway runs and how servers reach it (``c.GatewayService``)."""

    service_name = Unicode("dask-gateway", help="The gateway's JupyterHub service name.").tag(
        config=True
    )
    managed = Bool(
        True,
        help="""Whether the hub starts the gateway (the local backend). False when the
        gateway runs elsewhere (e.g. the dask-gateway Helm chart on Kubernetes): then
        set ``service_url``, ``address`` and ``proxy_address``.""",
    ).tag(config=True)
    config_file = Unicode(
        "",
        help="""The gateway's configuration file (managed gateway only); the bundle's
        jupyterhub_config.d/60-dask-gateway.py sets it to services/dask-gateway/.""",
    ).tag(config=True)
    port = Int(
        help="Loopback port of the gateway's HTTP proxy; default $PANGEOHUB_GATEWAY_PORT, "
        "else a free one.",
    ).tag(config=True)
    scheduler_port = Int(
        help="Loopback port of the gateway's scheduler (TLS) proxy; default "
        "$PANGEOHUB_GATEWAY_SCHEDULER_PORT, else a free one.",
    ).tag(config=True)
    service_url = Unicode(help="URL the hub routes /services/<name>/ to.").tag(config=True)
    address = Unicode(help="Gateway API address servers use (DASK_GATEWAY__ADDRESS).").tag(
        config=True
    )
    proxy_address = Unicode(
        help="Scheduler proxy address servers use (DASK_GATEWAY__PROXY_ADDRESS)."
    ).tag(config=True)
    public_address = Unicode(
        help="""Gateway address as browsers see it, for dashboard links
        (DASK_GATEWAY__PUBLIC_ADDRESS); default: through the hub, /services/<name>.""",
    ).tag(config=True)
    base_url = Unicode("/", help="The hub's base URL (c.JupyterHub.base_url).").tag(config=True)
    api_token = Unicode(help="The gateway's hub API token (default: kept in the state dir).").tag(
        config=True
    )
    worker_environment_hooks = List(
        Callable(),
        help="""Callables ``hook(spawner) -> dict`` (may be async) whose variables go to
        the workers of clusters started from that server, e.g. the scratch variables.
        Default: pangeohub's scratch hook.""",
    ).tag(config=True)
    worker_token_scopes = List(
        Unicode(),
        ["access:services!service=scratch"],
        help="""Scopes of a token made for the workers of each server (as their
        $JUPYTERHUB_API_TOKEN, e.g. for scratch credentials), revoked when the server
        stops. It never holds more than its user. Empty: no token.""",
    ).tag(config=True)

    @default("worker_environment_hooks")
    def _default_worker_environment_hooks(self):
        from ..scratch.hook import scratch_environment

        return [scratch_environment]

    request_timeout = Float(
        10, help="Seconds the hub's hooks wait for the gateway (start and stop of servers)."
    ).tag(config=True)

    @default("port")
    def _default_port(self):
        return int(os.environ.get("PANGEOHUB_GATEWAY_PORT") or free_port())

    @default("scheduler_port")
    def _default_scheduler_port(self):
        return int(os.environ.get("PANGEOHUB_GATEWAY_SCHEDULER_PORT") or free_port())

    @default("service_url")
    def _default_service_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def prefix(self) -> str:
        return f"{self.base_url.rstrip('/')}/services/{self.service_name}"

    @default("address")
    def _default_address(self):
        return f"{self.service_url}{self.prefix}"

    @default("proxy_address")
    def _default_proxy_address(self):
        return f"gateway://127.0.0.1:{self.scheduler_port}"

    @default("public_address")
    def _default_public_address(self):
        return self.prefix

    @default("api_token")
    def _default_api_token(self):
        return StateDirectory.from_env().secret("dask_gateway_api_token")

    # --- registration ------------------------------------------------------

    def service(self, environment: dict | None = None) -> dict:
        """The entry for ``c.JupyterHub.services``."""
        spec = {
            "name": self.service_name,
            "url": self.service_url,
            "api_token": self.api_token,
            "display": False,  # an API, not a page for the hub's Services menu
        }
        if self.managed:
            spec["command"] = [sys.executable, "-m", "dask_gateway_server", "-f", self.config_file]
            spec["environment"] = {
                "PANGEOHUB_GATEWAY_TCP_ADDRESS": f"127.0.0.1:{self.scheduler_port}",
                **(environment or {}),
            }
        return spec

    @property
    def access_scope(self) -> str:
        return f"access:services!service={self.service_name}"

    # --- hooks ---------------------------------------------------------------

    async def environment(self, spawner) -> dict[str, str]:
        """Every server's Dask Gateway settings: ``GatewayCluster()`` needs no arguments.

        Also tells the gateway the server's image (the user's workers may run it) and
        what the workers of clusters started from it get (scratch variables, a token).
        """
        env = {
            "DASK_GATEWAY__ADDRESS": self.address,
            "DASK_GATEWAY__PROXY_ADDRESS": self.proxy_address,
            "DASK_GATEWAY__PUBLIC_ADDRESS": self.public_address,
            "DASK_GATEWAY__AUTH__TYPE": "jupyterhub",
            # Values quoted so Dask's config parser keeps them strings.
            "DASK_GATEWAY__CLUSTER__OPTIONS__SERVER": json.dumps(server_tag(spawner.name)),
        }
        profile = getattr(spawner, "profile", None)
        image = getattr(profile, "image", None) or getattr(spawner, "image", "")
        image = image if isinstance(image, str) else ""
        if image:
            # Workers run the server's own image by default.
            env["DASK_GATEWAY__CLUSTER__OPTIONS__IMAGE"] = json.dumps(image)
        body = {
            "user": spawner.user.name,
            "server": server_tag(spawner.name),
            "image": image,
            "environment": await self.worker_environment(spawner),
        }
        await self._call_gateway(spawner, SERVER_ROUTE, body)
        return env

    def _token_note(self, spawner) -> str:
        return f"Dask workers of server {server_tag(spawner.name)}"

    async def worker_environment(self, spawner) -> dict[str, str]:
        """What the workers of this server's clusters get (pangeohub sets it, users
        cannot override it): the worker hooks' variables and a token of their own."""
        env = await collect_environment(
            self.worker_environment_hooks, spawner, "Dask worker environment hook"
        )
        if self.worker_token_scopes:
            self.revoke_worker_tokens(spawner)
            try:
                env["JUPYTERHUB_API_TOKEN"] = spawner.user.new_api_token(
                    note=self._token_note(spawner), scopes=list(self.worker_token_scopes)
                )
            except Exception as error:  # e.g. a scope of a service this hub does not run
                spawner.log.warning(
                    "No token for the Dask workers of %s (%s)", spawner._log_name, error
                )
        return env

    def revoke_worker_tokens(self, spawner) -> None:
        """Delete the tokens made for the workers of this server."""
        note = self._token_note(spawner)
        stale = [t for t in spawner.user.api_tokens if t.note == note]
        for token in stale:
            spawner.user.db.delete(token)
        if stale:
            spawner.user.db.commit()

    async def stop_server_clusters(self, spawner) -> list[str]:
        """Shut down the clusters started from ``spawner``'s server (post-stop hook)."""
        self.revoke_worker_tokens(spawner)
        body = {"user": spawner.user.name, "server": server_tag(spawner.name)}
        result = await self._call_gateway(spawner, STOP_ROUTE, body)
        stopped = result.get("stopped", [])
        if stopped:
            spawner.log.info("Stopped %d Dask cluster(s) of %s", len(stopped), spawner._log_name)
        return stopped

    async def _call_gateway(self, spawner, route: str, body: dict) -> dict:
        """POST ``body`` to one of the gateway's pangeohub routes; {} if it fails."""
        try:
            response = await AsyncHTTPClient().fetch(
                f"{self.address}{route}",
                method="POST",
                body=json.dumps(body),
                headers={"Authorization": f"token {self.api_token}"},
                request_timeout=self.request_timeout,
                connect_timeout=self.request_timeout,
            )
            return json.loads(response.body)
        except (HTTPClientError, OSError, ValueError) as error:
            spawner.log.warning(
                "Dask Gateway did not answer %s for %s (%s)",
                route,
                spawner._log_name,
                getattr(error, "code", type(error).__name__),
            )
            return {}


def _chain_post_stop_hook(c, hook) -> None:
    """Run ``hook`` after any post-stop hook already configured."""
    previous = c.Spawner.post_stop_hook if "post_stop_hook" in c.Spawner else None
    if getattr(previous, "pangeohub_gateway", False):
        return

    async def post_stop_hook(spawner):
        if previous is not None:
            result = previous(spawner)
            if hasattr(result, "__await__"):
                await result
        await hook(spawner)

    post_stop_hook.pangeohub_gateway = True
    c.Spawner.post_stop_hook = post_stop_hook


def profile_images(c) -> list[dict]:
    """The images of the hub's profiles and who may use them, for the gateway."""
    from ..policy import PangeoPolicy

    try:
        profiles = PangeoPolicy(config=c).all_profiles()
    except ValueError:
        return []  # pangeohub's start-up checks report the profile's problem
    return [{"image": p.image, "groups": sorted(p.groups)} for p in profiles if p.image]


def wire_gateway(c) -> GatewayService:
    """Wire Dask Gateway into the hub's final config ``c`` (run once everything, the
    admin's override included, is loaded): the service, its scope, the hooks."""
    gateway = GatewayService(config=c)
    if gateway.managed and not gateway.config_file:
        raise ValueError(
            "c.GatewayService.config_file is not set: point it at the gateway's "
            "configuration (the bundle's is services/dask-gateway/dask_gateway_config.py)."
        )
    if "base_url" in c.JupyterHub:
        gateway.base_url = c.JupyterHub.base_url
    environment = {
        "PANGEOHUB_STATE_DIR": str(StateDirectory.from_env().path),
        "PANGEOHUB_GATEWAY_SERVER_IMAGES": json.dumps(profile_images(c)),
    }
    if os.environ.get("PANGEOHUB_GATEWAY_CONFIG"):
        environment["PANGEOHUB_GATEWAY_CONFIG"] = os.environ["PANGEOHUB_GATEWAY_CONFIG"]
    register_service(c, gateway.service(environment))
    grant_scopes(c, "user", [gateway.access_scope])
    grant_scopes(c, "server", [gateway.access_scope])
    # The gateway reads servers, to stop clusters whose server stopped while it was down.
    roles = config_list(c, "load_roles")
    role = f"{gateway.service_name}-service"
    if not any(r.get("name") == role for r in roles):
        scopes = ["read:users:name", "read:servers"]
        roles.append({"name": role, "scopes": scopes, "services": [gateway.service_name]})
    c.JupyterHub.load_roles = roles
    add_environment_hook(c, gateway.environment)
    _chain_post_stop_hook(c, gateway.stop_server_clusters)
    return gateway
