"""A server's side of its environment: which version it runs, its command and variables.

A start runs the version that is current then (built first if needed); the version is
kept in the server's state, so a hub restart knows which versions running servers use
and never removes them. The server's image (``JUPYTER_IMAGE_SPEC``, and what the hub
reports to Dask Gateway) names the version, so its Dask workers run on the same Python
and packages. Nothing of the hub's own environment is on a server's path: its Jupyter
configuration and Lab extension come from the copy of pangeohub inside the environment.
"""

from __future__ import annotations

import asyncio
import os
import sys

from ..parts import hub_part
from ..policy import PolicyError
from ..refusal import refusal
from .build import Builder, BuildFailed
from .settings import Environments
from .spec import SpecError
from .versions import Version, read_version, version_of_image

STATE_KEY = "environment"
_builders: dict[int, Builder] = {}


def settings_of(spawner) -> Environments:
    return hub_part(Environments, spawner)


def builder_of(settings: Environments) -> Builder:
    """The hub's one builder for these settings (it holds the in-process build locks)."""
    builder = _builders.get(id(settings))
    if builder is None or builder.settings is not settings:
        builder = _builders[id(settings)] = Builder(settings)
    return builder


class EnvironmentUnavailable(Exception):
    """The server's environment cannot be built (``message`` is for the person)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


async def version_for_start(spawner, profile, progress) -> Version:
    """The version ``profile``'s environment is at now, built first if it is not."""
    settings = settings_of(spawner)
    name = settings.environment_of(profile)
    builder = builder_of(settings)
    try:
        return await builder.ensure(name, progress)
    except SpecError as error:
        spawner.log.error("Environment %s: %s", name, error)
        raise EnvironmentUnavailable(
            f"The environment {name!r} is not set up correctly on this hub. "
            "Ask a hub admin to check c.Environments."
        ) from None
    except BuildFailed as failure:
        spawner.log.error("Environment %s failed to build: %s\n%s", name, failure, failure.detail)
        raise EnvironmentUnavailable(
            f"The environment {name!r} could not be built, so the server cannot start. "
            "Ask a hub admin to look at the hub's log (pangeohub-environments build shows "
            "why)."
        ) from None


def server_command(version: Version, cmd: list[str]) -> list[str]:
    """The server's command on the environment's Python (when it is the hub's)."""
    if cmd and os.path.realpath(cmd[0]) == os.path.realpath(sys.executable):
        return [version.python, *cmd[1:]]
    return list(cmd)


def _joined(*parts: str) -> str:
    return os.pathsep.join(p for p in parts if p)


def server_variables(version: Version, env: dict[str, str]) -> dict[str, str]:
    """What a server in ``version`` gets: the environment first on ``PATH`` (``python``,
    ``pip``, ``dask`` are its own), pangeohub's Jupyter configuration and labextension
    from the environment's copy, and which environment and version it is."""
    data = version.site_packages / "pangeohub"
    return {
        "PATH": _joined(version.bin, env.get("PATH", os.defpath)),
        "VIRTUAL_ENV": str(version.prefix),
        "JUPYTER_CONFIG_PATH": str(data / "jupyter-config"),
        "JUPYTER_PATH": str(data / "jupyter-data"),
        "PANGEO_ENVIRONMENT": version.name,
        "PANGEO_ENVIRONMENT_VERSION": version.key,
    }


def environment_python(image: str, config=None) -> str | None:
    """The Python of the environment version ``image`` names (``uv-env:<path>``) under
    this hub's environments root, for Dask Gateway's scheduler and workers."""
    settings = Environments(config=config) if config is not None else Environments()
    version = version_of_image(settings.root_path, image)
    return version.python if version is not None else None


def versions_in_use(db, name: str) -> set[str]:
    """The versions of ``name`` that running servers were started in (from their state)."""
    from jupyterhub import orm

    keys = set()
    running = db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None))
    for orm_spawner in running:
        used = (orm_spawner.state or {}).get(STATE_KEY) or {}
        if used.get("name") == name and isinstance(used.get("key"), str):
            keys.add(used["key"])
    return keys


async def remove_unused_versions(spawner, starting: set[tuple[str, str]]) -> None:
    """Remove each environment's versions that no running (or starting) server uses (the
    hub's database is read here, on the hub's thread; the files go in a thread)."""
    settings = settings_of(spawner)
    builder = builder_of(settings)
    for name in settings.names():
        in_use = versions_in_use(spawner.db, name) | {k for n, k in starting if n == name}
        try:
            await asyncio.to_thread(builder.remove_unused, name, in_use)
        except (OSError, SpecError) as error:
            spawner.log.warning("Could not remove old versions of %s: %s", name, error)


class EnvironmentSpawnerMixin:
    """The local spawner's part: each start runs in its profile's environment.

    Before the policy's part of a start (``prepare_start``) the profile's environment is
    resolved to its current version, built first if needed (the spawn page shows the
    build's progress), and versions no server runs any more are removed. The version is
    kept in the server's state. A launched server (``_launch``) runs in its own, and in
    the version that one is layered on (kept in its state the same way).
    """

    _launch = None
    _environment: Version | None = None  # the environment version this start runs in
    _environment_lines: list | None = None  # what its build said, for the progress stream
    _environment_news = None  # an asyncio.Event while the build runs
    _starting_versions: set = set()  # (name, version) of starts under way in this hub

    async def prepare_start(self):
        self._environment = None
        settings = settings_of(self)
        layer = getattr(self._launch, "layer", None)
        if layer is not None:  # a launch made on an environment's version runs in it too
            self._environment = read_version(settings.root_path, *layer)
            if self._environment is not None:
                self._starting_versions.add((self._environment.name, self._environment.key))
        elif self._launch is None and settings.enabled:
            profile = self.resolve_profile((self.user_options or {}).get("profile"))
            self._environment_lines, self._environment_news = [], asyncio.Event()

            def said(line: str) -> None:
                self._environment_lines.append(line)
                self._environment_news.set()

            try:
                version = await version_for_start(self, profile, said)
            except EnvironmentUnavailable as error:
                raise refusal(PolicyError(503, error.message)) from None
            finally:
                self._environment_news.set()
                self._environment_news = None
            self._environment = version
            self._starting_versions.add((version.name, version.key))
            await remove_unused_versions(self, set(self._starting_versions))
        await super().prepare_start()

    async def progress(self):
        """What building the server's environment says, while it builds."""
        sent = 0
        while True:
            lines, news = self._environment_lines or [], self._environment_news
            while sent < len(lines):
                yield {"progress": 10, "message": lines[sent]}
                sent += 1
            if news is None:
                return
            news.clear()
            if sent == len(lines):
                await news.wait()

    def get_state(self):
        state = super().get_state()
        if self._environment is not None:
            state[STATE_KEY] = {"name": self._environment.name, "key": self._environment.key}
        return state

    def load_state(self, state):
        super().load_state(state)
        used = (state or {}).get(STATE_KEY)
        if isinstance(used, dict) and self._environment is None:
            root = settings_of(self).root_path
            self._environment = read_version(root, str(used.get("name")), str(used.get("key")))

    def clear_state(self):
        super().clear_state()
        self._environment = None

    async def stop(self, now=False):
        version = self._environment  # the stop clears the state
        await super().stop(now=now)
        if version is not None:
            self._starting_versions.discard((version.name, version.key))

    def environment_label(self, profile) -> str | None:
        """The environment the picker names for ``profile`` (None: servers run the hub's
        own Python, and the picker names the profile's image)."""
        settings = settings_of(self)
        return settings.environment_of(profile) if settings.enabled else None

    def resources_line(self, profile) -> str:
        """The plain picker's line under a profile's name: resources and environment."""
        label = self.environment_label(profile)
        return profile.summary() + (f" · environment {label}" if label else "")


def workers_environment(spawner) -> dict[str, str]:
    """What a server's Dask workers get (``c.GatewayService.worker_environment_hooks``):
    the server's home, so packages the person installed with ``pip install --user`` (and
    Dask's ``PipInstall`` plugin, which installs there) are on the workers' path too."""
    version = getattr(spawner, "_environment", None)
    home = getattr(spawner, "server_directory", None)
    if version is None or home is None:
        return {}
    return {"HOME": str(home), "PYTHONUSERBASE": os.path.join(str(home), ".local")}
