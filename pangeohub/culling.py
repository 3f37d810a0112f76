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
import logging
import os
import sys
from datetime import timedelta

import jupyterhub_idle_culler
from prometheus_client import Counter, start_http_server
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Bool, Int, Unicode, default
from traitlets.config import Config, Configurable

from .hubconfig import config_list, register_role, register_service, write_service_settings

SERVICE_NAME = "idle-culler"
CULLER_MODULES = ("jupyterhub_idle_culler", "jupyterhub-idle-culler", "pangeohub.culling")
DESTRUCTIVE_FLAGS = {
    "--remove-named-servers": "removes named servers, and removing a server deletes its disk",
    "--cull-users": "deletes users, and deleting a user deletes every disk they have",
}
DESTRUCTIVE_SETTINGS = {
    "remove_named_servers": "--remove-named-servers",
    "cull_users": "--cull-users",
}


CULLED = Counter(
    "pangeohub_servers_culled",
    "Servers the idle culler decided to stop (idle past c.CullingPolicy.timeout or max_age).",
)


class CullingPolicy(Configurable):
    """When idle servers stop, set in ``c.CullingPolicy``.

    Any other jupyterhub-idle-culler setting goes in ``c.IdleCuller`` in the same file
    (except ``remove_named_servers`` and ``cull_users``, which delete disks and are refused).
    """

    enabled = Bool(True, help="Run the idle culler.").tag(config=True)
    timeout = Int(
        7200,
        min=1,
        help="Stop a server after this many seconds without activity (2 hours). "
        "jupyterhub-idle-culler's --timeout.",
    ).tag(config=True)
    every = Int(
        600,
        min=1,
        help="Check for idle servers every this many seconds (10 minutes). "
        "jupyterhub-idle-culler's --cull-every.",
    ).tag(config=True)
    max_age = Int(
        0,
        min=0,
        help="Stop a server this many seconds after it started, even if active (0: never). "
        "jupyterhub-idle-culler's --max-age.",
    ).tag(config=True)
    cull_admin_servers = Bool(
        True, help="Whether admins' idle servers are stopped like everyone else's."
    ).tag(config=True)
    concurrency = Int(
        10, min=1, help="Hub API requests the culler makes at once (--concurrency)."
    ).tag(config=True)
    metrics_port = Int(
        0,
        help="""Port on which the culler serves its Prometheus metrics (servers culled) at
        /metrics, on 127.0.0.1 unless metrics_ip says otherwise; 0: no metrics.""",
    ).tag(config=True)
    metrics_ip = Unicode("127.0.0.1", help="Address the culler's metrics listen on.").tag(
        config=True
    )

    def settings(self, config: Config) -> dict:
        """What the culler service reads: ``c.IdleCuller`` from the hub's configuration
        with this policy's values, and this policy (for the arbiter)."""
        culler = dict(config.IdleCuller) if "IdleCuller" in config else {}
        culler.update(
            timeout=self.timeout,
            cull_every=self.every,
            max_age=self.max_age,
            concurrency=self.concurrency,
            remove_named_servers=False,
            cull_users=False,
        )
        policy = {"cull_admin_servers": self.cull_admin_servers}
        if self.metrics_port:
            policy.update(metrics_port=self.metrics_port, metrics_ip=self.metrics_ip)
        return {"IdleCuller": culler, "CullingPolicy": policy}

    def command(self, settings_file: str = "") -> list[str]:
        """The culler's command line: its settings file, and only ever stop servers."""
        config = [f"--config={settings_file}"] if settings_file else []
        return [
            sys.executable,
            "-m",
            "pangeohub.culling",
            *config,
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
        path = write_service_settings(SERVICE_NAME, self.settings(config))
        register_service(config, {"name": SERVICE_NAME, "command": self.command(str(path))})
        register_role(
            config, {"name": SERVICE_NAME, "scopes": self.scopes(), "services": [SERVICE_NAME]}
        )


def wire_culling(config: Config) -> None:
    """Register the idle culler with its final settings (part of ``pangeohub.configure``)."""
    CullingPolicy(config=config).apply(config)


def destructive_culling(config: Config) -> str | None:
    """Why a configured culler would delete disks, or None if it only stops servers."""
    culler = config.IdleCuller if "IdleCuller" in config else {}
    for setting, flag in DESTRUCTIVE_SETTINGS.items():
        if culler.get(setting):
            return (
                f"c.IdleCuller.{setting} is set, and a culler that {DESTRUCTIVE_FLAGS[flag]}. "
                f"Culling must only stop servers: remove c.IdleCuller.{setting}."
            )
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
                    f"remove {flag} (pangeohub's own culler is set with c.CullingPolicy; "
                    "on Zero to JupyterHub, leave cull.users and cull.removeNamedServers "
                    "false)."
                )
    return None


class CullArbiter:
    """The culler's decision for one server (``c.IdleCuller.cull_arbiter_hook``).

    Never culls on missing data (no ``last_activity``); spares admins' servers when
    ``c.CullingPolicy.cull_admin_servers`` is false.
    """

    def __init__(self, log, cull_admin_servers: bool = True, api_url: str = "", token: str = ""):
        self.log = log
        self.cull_admin_servers = cull_admin_servers
        self.api_url = api_url.rstrip("/")
        self.token = token

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
        CULLED.inc()
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
    """jupyterhub-idle-culler with pangeohub's arbiter (its ``cull_arbiter_hook``)."""

    @default("cull_arbiter_hook")
    def _default_arbiter(self):
        return CullArbiter(
            self.log,
            cull_admin_servers=CullingPolicy(parent=self).cull_admin_servers,
            api_url=self.url,
            token=os.environ.get("JUPYTERHUB_API_TOKEN", ""),
        )

    def start(self):
        policy = CullingPolicy(parent=self)
        if policy.metrics_port:
            start_http_server(policy.metrics_port, addr=policy.metrics_ip)
            self.log.info("Metrics on http://%s:%d/metrics", policy.metrics_ip, policy.metrics_port)
        return super().start()


class OneLineFailures(logging.Filter):
    """A failed check (hub unreachable, token refused) as one line, no traceback.

    The culler runs each check as a tornado callback; tornado logs a callback's exception
    with its traceback on ``tornado.application``. The next check runs regardless.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HTTPClientError):
            hint = " (is the culler's token revoked?)" if error.code in (401, 403) else ""
            record.msg, record.args = (
                "The hub refused the culler: HTTP %s%s; retrying at the next check.",
                (error.code, hint),
            )
        elif isinstance(error, OSError):
            record.msg, record.args = (
                "Could not reach the hub (%s); retrying at the next check.",
                (error.strerror or type(error).__name__,),
            )
        else:
            return True
        record.exc_info = record.exc_text = None
        return True


def main() -> None:
    """Run the culler (the hub starts it as the idle-culler service)."""
    logging.getLogger("tornado.application").addFilter(OneLineFailures())
    PangeoIdleCuller.launch_instance()


if __name__ == "__main__":
    main()
