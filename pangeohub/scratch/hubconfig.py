"""Hub-side wiring of scratch: the managed service, its scopes, and the spawner hook."""

from __future__ import annotations

import os
import sys

from ..hubconfig import add_environment_hook, free_port, grant_scopes, register_service
from ..state import StateDirectory
from .hook import scratch_environment

SCOPE = "access:services!service={name}"
PASSED_ENV = ("AWS_", "GOOGLE_", "PANGEOHUB_")


def configure_hub(c, config_file: str, name: str = "scratch") -> str:
    """Register the scratch service, grant user and server tokens its scope, add the hook.

    The service listens on ``$PANGEOHUB_SCRATCH_PORT`` (else a free loopback port) and
    reads ``config_file``. Returns the service URL servers use.
    """
    host = os.environ.get("PANGEOHUB_SCRATCH_IP", "127.0.0.1")
    port = int(os.environ.get("PANGEOHUB_SCRATCH_PORT") or free_port(host))
    url = f"http://{host}:{port}"
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
    env["PANGEOHUB_STATE_DIR"] = str(StateDirectory.from_env().path)
    register_service(
        c,
        {
            "name": name,
            "url": url,
            "display": False,
            "command": [sys.executable, "-m", "pangeohub.scratch.service", "--config", config_file],
            "environment": env,
        },
    )
    scope = SCOPE.format(name=name)
    grant_scopes(c, "user", [scope])
    grant_scopes(c, "server", [scope])
    c.ScratchEnvironment.service_url = f"{url}/services/{name}/"
    add_environment_hook(c, scratch_environment)
    return c.ScratchEnvironment.service_url


def wire_scratch(c) -> None:
    """The wiring step (see pangeohub.startup.WIRING): configure_hub with the service's
    config file, ``c.ScratchService.config_file``."""
    configure_hub(c, c.ScratchService.config_file)
