"""The spawner environment hook: ``PANGEO_SCRATCH`` and what the standard clients need.

pangeohub's spawners run it for every server while scratch is enabled
(``c.ScratchService.enabled``); it reads the same ``c.ScratchService`` / backend settings
as the service.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path

import aiohttp
from jupyterhub.httpclient import fetch
from traitlets import Bool, Unicode, default
from traitlets.config import LoggingConfigurable

from ..numbers import FiniteFloat
from ..parts import hub_part
from ..state import state_path, write_atomic
from .base import ScratchBackend, backend_class
from .settings import scratch_endpoints

# what this process wrote last, by path (write_client_files)
_written: dict[str, str] = {}
# the last health check, by (event loop, service URL): its (status, loop time answered)
_health_checks: dict[tuple, asyncio.Future] = {}


class ScratchEnvironment(LoggingConfigurable):
    """What every server gets so that ``$PANGEO_SCRATCH`` works with no code."""

    service_url = Unicode(
        help="""The scratch service's URL as servers (and Dask workers) reach it,
        ending in the service prefix, e.g. http://hub:10101/services/scratch/. Default:
        where the hub reaches it (c.ScratchService.url, or the port the hub chose).""",
    ).tag(config=True)
    credential_command = Unicode(
        help="""Command run by boto3/google-auth to get credentials (no shell). Default: this
        Python with -m pangeohub.scratch.cli; in images with pangeohub installed,
        'pangeohub-scratch-credentials'.""",
    ).tag(config=True)
    client_config_dir = Unicode(
        help="""Directory for the client configuration files (no secrets) the variables
        point to; it must be readable by servers (in containers: mount it or bake the files
        into the image at the same path).""",
    ).tag(config=True)
    check_timeout = FiniteFloat(
        5, min=0.1, help="Seconds to wait for the scratch service at server start."
    ).tag(config=True)
    check_credentials = Bool(
        False,
        help="""At each server start, ask the service for the server's own credentials
        instead of only checking that it answers. That proves the whole path (token, scope,
        storage backend) but costs the hub one more API request (the service checks the token
        with the hub) and the backend a credential request per start; off by default, so a
        start costs the hub no more than a health check.""",
    ).tag(config=True)
    health_cache_seconds = FiniteFloat(
        10,
        min=0,
        help="""Seconds a health check that found the service answering serves the starts
        after it: when many people start servers at once (an event, a class), the hub asks
        once in this time instead of once per start. A check that found it unreachable
        serves only the starts waiting for it, so the next start asks again. 0: every start
        asks (overlapping starts still share one request).""",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self):
        return scratch_endpoints(self.config).service_url

    @default("credential_command")
    def _default_command(self):
        return f"{shlex.quote(sys.executable)} -m pangeohub.scratch.cli"

    @default("client_config_dir")
    def _default_dir(self):
        return str(state_path() / "scratch-client")

    _backend: ScratchBackend | None = None

    def backend(self) -> ScratchBackend:
        """The configured storage backend (made once: it holds settings only)."""
        if self._backend is None:
            name = self.config.ScratchService.get("backend", "local")
            self._backend = backend_class(name)(config=self.config, log=self.log)
        return self._backend

    def write_client_files(self, files: dict[str, str]) -> dict[str, str]:
        """Write each file (if changed) and return name -> path.

        The files change only with the settings: what this process last wrote is
        remembered, so a start costs a ``stat`` per file, not a read."""
        directory = Path(self.client_config_dir)
        paths = {}
        for name, text in files.items():
            path = directory / name
            if _written.get(str(path)) != text or not path.exists():
                directory.mkdir(parents=True, exist_ok=True)
                if not path.exists() or path.read_text() != text:
                    write_atomic(path, text, 0o644)  # no secret: servers read them
                _written[str(path)] = text
            paths[name] = str(path)
        return paths

    async def check_service(self, token: str | None) -> str:
        """``available`` if the service answers (with ``check_credentials``: if it issues
        credentials for this server's token).

        Health checks that overlap share one request: starts arriving together while
        the service is slow wait for one answer instead of queueing one request each; an
        answer serves the starts of the next ``health_cache_seconds`` too."""
        token = token if self.check_credentials else None
        if token:
            return await self._check(self.service_url + "credentials", token)
        loop = asyncio.get_running_loop()
        key = (loop, self.service_url)
        check = _health_checks.get(key)
        if check is None or not _still_serves(check, loop.time(), self.health_cache_seconds):
            for stale in [k for k in _health_checks if k[0].is_closed()]:
                del _health_checks[stale]  # e.g. a test's loop
            check = _health_checks[key] = asyncio.ensure_future(self._timed_health_check())
        status, _answered_at = await asyncio.shield(check)
        return status

    async def _timed_health_check(self) -> tuple[str, float]:
        status = await self._check(self.service_url + "health", None)
        return status, asyncio.get_running_loop().time()

    async def _check(self, url: str, token: str | None) -> str:
        headers = {"Authorization": f"token {token}"} if token else {}
        try:
            # JupyterHub's shared client for requests inside the hub (kept-alive connections)
            response = await fetch(
                url,
                headers=headers,
                raise_for_status=False,
                timeout=aiohttp.ClientTimeout(total=self.check_timeout),
            )
            body = await response.read()
        except Exception as error:
            self.log.warning("Scratch service unreachable: %s", type(error).__name__)
            return "unavailable"
        if response.status >= 400:
            try:
                message = json.loads(body).get("message", "") if body else ""
            except (ValueError, AttributeError):
                message = ""
            self.log.warning("Scratch unavailable (%s): %s", response.status, message)
            return "unavailable"
        return "available"

    async def environment(self, user: str, token: str | None = None) -> dict[str, str]:
        backend = self.backend()
        try:  # the person's scratch space works at their server's first start
            await asyncio.to_thread(backend.prepare, user)
        except OSError as error:
            self.log.error("Could not prepare %s's scratch space: %s", user, error.strerror)
        except ValueError as error:  # a name refused for its account (said at the start)
            self.log.warning("Could not prepare %s's scratch space: %s", user, error)
        url = backend.url(user)
        paths = self.write_client_files(
            backend.client_files(self.credential_command, self.service_url)
        )
        env = {
            "PANGEO_SCRATCH": url,
            "SCRATCH_BUCKET": url,
            "PANGEO_SCRATCH_SERVICE_URL": self.service_url,
            **backend.client_environment(user, paths),
        }
        env["PANGEO_SCRATCH_STATUS"] = await self.check_service(token)
        return env


def _still_serves(check: asyncio.Future, now: float, seconds: float) -> bool:
    """A check in flight serves every start; a finished one only if it found the
    service answering less than ``seconds`` ago."""
    if not check.done():
        return True
    if check.cancelled() or check.exception() is not None:
        return False
    status, answered_at = check.result()
    return status == "available" and now - answered_at < seconds


async def scratch_environment(spawner) -> dict[str, str]:
    """``hook(spawner) -> dict``: the scratch variables for ``spawner``'s user.

    Computed once per start (a start has a new server token): the server's hooks and its
    Dask workers' hooks both ask, at the same time, and share the one answer.
    """
    token = getattr(spawner, "api_token", None)
    cached = getattr(spawner, "_pangeo_scratch_environment", None)
    if token and cached is not None and cached[0] == token:
        return dict(await asyncio.shield(cached[1]))
    scratch = hub_part(ScratchEnvironment, spawner)
    task = asyncio.ensure_future(scratch.environment(spawner.user.name, token))
    spawner._pangeo_scratch_environment = (token, task)
    return dict(await asyncio.shield(task))
