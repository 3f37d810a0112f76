"""A launch as an object: the repository's ref resolved, its environment built (or
reused), and the person's server started with it, as one stream of events.

Where the environment is built is a :class:`Builds`: on this machine with uv
(:mod:`.local_builds`) or by BinderHub on Kubernetes (:mod:`.binderhub`). The server is
started through the hub's REST API (:mod:`.start`), so the hub's rules apply as to any
other start. A refusal of the request itself (a bad ref, too many builds, no access to
BinderHub) is a :class:`~.spec.LaunchError` raised before the first event, so it can be
answered as a 4xx instead of a stream.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .builder import event
from .spec import RepoSpec

OPTION = "binder"  # the key of a launch in a server's user_options


@dataclass(frozen=True)
class LaunchRequest:
    """What a launch link asks for, and for whom."""

    user: Any  # the hub's User: a person
    provider: str  # gh, git, ...
    raw_spec: str  # the spec as the link has it, still URL-encoded (BinderHub's request)
    repo: RepoSpec
    landing: str  # where in the server to land (urlpath/labpath)
    profile: str = ""  # the profile the person chose, if any


@dataclass(frozen=True)
class Built:
    """A finished build: what the server's name ends with, and its ``binder`` option."""

    name_suffix: str
    option: dict


class Builds(ABC):
    """Where launches are built: resolves a ref and builds (or reuses) its environment."""

    @abstractmethod
    def build(self, request: LaunchRequest) -> AsyncIterator[dict | Built]:
        """The build's events in BinderHub's shape, then a :class:`Built` (not an event)
        when it succeeded; a ``failed`` event ends it otherwise. A refusal of the request
        raises LaunchError before the first event."""


class Starts(ABC):
    """Starts a person's launched server."""

    @abstractmethod
    async def start(self, user, name: str, options: dict) -> str | None:
        """Start ``user``'s server ``name`` with ``options``: None when it is ready, else
        what went wrong, in words for the person."""


class Launch:
    """One launch: :meth:`events` resolves, builds, then starts."""

    def __init__(
        self,
        request: LaunchRequest,
        builds: Builds,
        starts: Starts,
        server_name: Callable[[RepoSpec, str], str],
    ):
        self.request = request
        self.builds = builds
        self.starts = starts
        self.server_name = server_name

    async def events(self) -> AsyncIterator[dict]:
        """The launch's events, the last ``ready`` (with ``url``) or ``failed``."""
        started = None
        built = None
        async with aclosing(self.builds.build(self.request)) as build:
            async for item in build:
                if isinstance(item, Built):
                    built = item
                    continue
                started = started or time.monotonic()  # from the stream's first event
                yield item
                if item["phase"] == "failed":
                    return
        if built is None:
            yield event("failed", "The build ended without an environment. Please try again.", 100)
            return
        async for item in self.start(built, started or time.monotonic()):
            yield item

    async def start(self, built: Built, started: float) -> AsyncIterator[dict]:
        """Start the launched server (the person's chosen profile, if any); its last
        event says where to open it, or why it did not start."""
        request = self.request
        name = self.server_name(request.repo, built.name_suffix)
        yield event("launching", f"Starting your server {name!r}.", 70, server=name)
        options = {OPTION: built.option}
        if request.profile:
            options["profile"] = request.profile
        failure = await self.starts.start(request.user, name, options)
        if failure:
            yield event("failed", failure, 100)
            return
        url = f"{request.user.url}{quote(name)}/{request.landing}"
        elapsed = time.monotonic() - started
        ready = f"Your server is ready ({elapsed:.1f} s); opening it."
        yield event("ready", ready, 100, url=url, server=name, seconds=round(elapsed, 2))
