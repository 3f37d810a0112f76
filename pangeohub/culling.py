"""Culling: what the idle-culler service decides, and how the hub runs it.

Run as a program (``python -m pangeohub.culling``) it is jupyterhub-idle-culler with
pangeohub's arbiter and with its own failures (hub unreachable, token revoked) logged
in one clear line and retried at the next check.

The hub runs jupyterhub-idle-culler as a managed service with a role holding only the
scopes it needs. Culling only ever *stops* servers: a stopped server keeps its disk and
is listed, ready to start again. Settings that would delete a server (and so its disk)
are refused at start-up. Inside the culler, :class:`CullArbiter` refuses to cull a server
on missing data and, if the admin says so, spares admins' servers.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

import jupyterhub_idle_culler
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Int, Unicode, default
from traitlets.config import Config, Configurable

from .hubconfig import config_list

SERVICE_NAME = "idle-culler"
CULL_ADMINS_ENV = "PANGEOHUB_CULL_ADMIN_SERVERS"
CULLER_MODULES = ("jupyterhub_idle_culler", "jupyterhub-idle-culler", "pangeohub.culling")
DESTRUCTIVE_FLAGS = {
    "--remove-named-servers": "removes named servers, and removing a server deletes its disk",
    "--cull-users": "deletes users, and deleting a user deletes every disk they have",
}


class CullingPolicy(Configurable):
    """When idle servers stop, set in ``c.CullingPolicy``."""

    enabled = Bool(True, help="Run the idle culler.").tag(config=True)
    timeout = Int(
        7200, help="Stop a server after this many seconds without activity (2 hours)."
    ).tag(config=True)
    every = Int(600, help="Check for idle servers every this many seconds (10 minutes).").tag(
        config=True
    )
    max_age = Int(
        0, help="Stop a server this many seconds after it started, even if active (0: never)."
    ).tag(config=True)
    cull_admin_servers = Bool(
        True, help="Whether admins' idle servers are stopped like everyone else's."
    ).tag(config=True)
    concurrency = Int(10, help="Hub API requests the culler makes at once.").tag(config=True)
    config_file = Unicode(
        "",
        help="A jupyterhub-idle-culler config file for anything else (c.IdleCuller...).",
    ).tag(config=True)

    def command(self) -> list[str]:
        """The culler's command line: only ever stop servers."""
        return [
            sys.executable,
            "-m",
            "pangeohub.culling",
            f"--config={self.config_file}",
            f"--timeout={self.timeout}",
            f"--cull-every={self.every}",
            f"--max-age={self.max_age}",
            f"--concurrency={self.concurrency}",
            "--remove-named-servers=False",
            "--cull-users=False",
        ]

    def scopes(self) -> list[str]:
        """What the culler may do: see servers and their activity, stop them."""
        scopes = ["list:users", "read:users:activity", "read:servers", "delete:servers"]
        if not self.cull_admin_servers:
            scopes.append("read:roles:users")  # to tell who is an admin
        return scopes

    def apply(self, config: Config) -> None:
        """Register the culler service and its role in the hub's ``config``."""
        if not self.enabled:
            return
        services = config_list(config, "services")
        services = [s for s in services if s.get("name") != SERVICE_NAME]
        services.append(
            {
                "name": SERVICE_NAME,
                "command": self.command(),
                "environment": {CULL_ADMINS_ENV: str(self.cull_admin_servers).lower()},
            }
        )
        config.JupyterHub.services = services
        roles = [
            r for r in config.JupyterHub.get("load_roles", []) if r.get("name") != SERVICE_NAME
        ]
        roles.append({"name": SERVICE_NAME, "scopes": self.scopes(), "services": [SERVICE_NAME]})
        config.JupyterHub.load_roles = roles


def destructive_culling(config: Config) -> str | None:
    """Why a configured culler would delete disks, or None if it only stops servers."""
    for service in config_list(config, "services"):
        command = [str(part) for part in service.get("command") or []]
        if not any(module in part for part in command for module in CULLER_MODULES):
            continue
        for i, part in enumerate(command):
            flag, _, value = part.partition("=")
            if flag not in DESTRUCTIVE_FLAGS:
                continue
            if not value and i + 1 < len(command) and not command[i + 1].startswith("--"):
                value = command[i + 1]
            if value.lower() in ("", "true", "1", "yes"):
                return (
                    f"the service {service.get('name')!r} runs the idle culler with {flag}, "
                    f"which {DESTRUCTIVE_FLAGS[flag]}. Culling must only stop servers: "
                    f"remove {flag} (pangeohub's own culler is set with c.CullingPolicy)."
                )
    return None


class CullArbiter:
    """The culler's decision for one server (``c.IdleCuller.cull_arbiter_hook``).

    Never culls on missing data (no ``last_activity``); spares admins' servers when
    ``$PANGEOHUB_CULL_ADMIN_SERVERS`` is false.
    """

    def __init__(self, log, cull_admin_servers: bool = True, api_url: str = "", token: str = ""):
        self.log = log
        self.cull_admin_servers = cull_admin_servers
        self.api_url = api_url.rstrip("/")
        self.token = token

    @classmethod
    def from_environment(cls, log) -> CullArbiter:
        return cls(
            log,
            cull_admin_servers=os.environ.get(CULL_ADMINS_ENV, "true") != "false",
            api_url=os.environ.get("JUPYTERHUB_API_URL", ""),
            token=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
        )

    async def __call__(self, inactive: timedelta | None, inactive_limit: int, server: dict) -> bool:
        name = server.get("full_name") or server.get("name") or "?"
        if not server.get("last_activity") or inactive is None:
            self.log.warning("Not culling %s: the hub reports no last activity for it.", name)
            return False
        if inactive.total_seconds() < inactive_limit:
            return False
        if not self.cull_admin_servers and await self._is_admin(name.split("/", 1)[0]):
            self.log.info("Not culling %s: admins' servers are not culled.", name)
            return False
        return True

    async def _is_admin(self, username: str) -> bool:
        """Whether the user holds the admin role (on error: assume so, and do not cull)."""
        request = HTTPRequest(
            f"{self.api_url}/users/{username}",
            headers={"Authorization": f"token {self.token}"},
            request_timeout=30,
        )
        try:
            response = await AsyncHTTPClient().fetch(request)
        except Exception as error:
            self.log.warning("Could not tell whether %s is an admin (%s).", username, error)
            return True
        return "admin" in json.loads(response.body).get("roles", [])


class PangeoIdleCuller(jupyterhub_idle_culler.IdleCuller):
    """jupyterhub-idle-culler with pangeohub's arbiter."""

    @default("cull_arbiter_hook")
    def _default_arbiter(self):
        return CullArbiter.from_environment(self.log)


def _guarded(cull_idle):
    """One check of the culler, its failure logged in a line and retried next time."""

    async def guarded_cull_idle(*args, logger, **kwargs):
        try:
            await cull_idle(*args, logger=logger, **kwargs)
        except HTTPClientError as error:
            hint = " (is the culler's token revoked?)" if error.code in (401, 403) else ""
            logger.error(
                "The hub refused the culler: HTTP %s%s; retrying at the next check.",
                error.code,
                hint,
            )
        except OSError as error:
            logger.error(
                "Could not reach the hub at %s (%s); retrying at the next check.",
                kwargs.get("url"),
                error.strerror or type(error).__name__,
            )

    return guarded_cull_idle


def main() -> None:
    """Run the culler (the hub starts it as the idle-culler service)."""
    jupyterhub_idle_culler.cull_idle = _guarded(jupyterhub_idle_culler.cull_idle)
    PangeoIdleCuller.launch_instance()


if __name__ == "__main__":
    main()
