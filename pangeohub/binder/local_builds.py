"""Launches built on this machine: the ref resolved with git, the environment built (or
reused) with uv by :class:`~.builder.BinderBuilder`, on the launch profile's environment.

Where environments are on (``c.Environments``), a launch is made on the current version of
the environment of the profile the launched server will run (the one the link asks for,
else the person's default, chosen by the same rule as any start): that version is built
first if it is not yet, and its build's lines are part of the launch's stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

from ..environments.servers import EnvironmentUnavailable, settings_of, version_for_start
from ..environments.versions import Version
from ..parts import hub_part
from ..policy import PangeoPolicy, PolicyError
from .builder import BinderBuilder, InUse, event
from .launch import OPTION, Builds, Built, LaunchRequest
from .spec import LaunchError


class LocalBuilds(Builds):
    """Builds on this machine; ``in_use`` names the environments servers run in."""

    def __init__(self, builder: BinderBuilder, in_use: InUse):
        self.builder = builder
        self.in_use = in_use

    async def build(self, request: LaunchRequest) -> AsyncIterator[dict | Built]:
        builder, repo, person = self.builder, request.repo, request.user.name
        builder.check_can_build(person)
        profile = launch_profile(builder, request)
        commit = await builder.resolve(repo, person)
        yield event("resolved", f"{repo.display} is commit {commit[:12]}.", 3, commit=commit)
        layer = None
        if profile is not None:
            async for item in profile_environment(builder, profile):
                if isinstance(item, Version):
                    layer = item
                    continue
                yield item
                if item["phase"] == "failed":
                    return
        key = None
        async with aclosing(builder.build(repo, commit, person, self.in_use, layer)) as build:
            async for item in build:
                yield item
                if item["phase"] == "failed":
                    return
                if item["phase"] == "built":
                    key = item["environment"]
        builder.mark_used(key)
        option = {"environment": key, "repository": repo.url, "ref": repo.ref, "commit": commit}
        yield Built(commit, option)


def launch_profile(builder: BinderBuilder, request: LaunchRequest):
    """The profile the launched server will run, where environments are on (None where
    they are off: the launch is made on the hub's packages); a refusal is the same 4xx
    the start would give, before anything is built."""
    if not settings_of(builder).enabled:
        return None
    groups = [group.name for group in getattr(request.user, "groups", [])]
    try:
        return hub_part(PangeoPolicy, builder).choose_profile(request.profile or None, groups)
    except PolicyError as error:
        raise LaunchError(error.status, error.message) from None


async def profile_environment(builder: BinderBuilder, profile) -> AsyncIterator[dict | Version]:
    """The events of making sure ``profile``'s environment is built (its build's lines),
    then its current :class:`Version`; or a ``failed`` event."""
    name = settings_of(builder).environment_of(profile)
    lines: asyncio.Queue[str] = asyncio.Queue()
    ensure = asyncio.ensure_future(version_for_start(builder, profile, lines.put_nowait))
    try:
        while not ensure.done() or not lines.empty():
            if lines.empty():
                waiter = asyncio.ensure_future(lines.get())
                await asyncio.wait({ensure, waiter}, return_when=asyncio.FIRST_COMPLETED)
                if not waiter.done():
                    waiter.cancel()
                    continue
                line = waiter.result()
            else:
                line = lines.get_nowait()
            yield event("log", line)
        version = ensure.result()
    except EnvironmentUnavailable as error:
        yield event("failed", error.message, 100, line="")
        return
    finally:
        ensure.cancel()  # (done, or the launch went away: the build itself goes on)
    yield event("building", f"On the environment {name} (version {version.key}).", 18)
    yield version


def keys_in_use(users) -> set[str]:
    """Environments that running (or starting) servers of the hub's ``users`` use."""
    keys = set()
    for user in list(users.values()):
        for spawner in list(user.spawners.values()):
            launch = (spawner.user_options or {}).get(OPTION)
            if isinstance(launch, dict) and (spawner.active or spawner.ready):
                keys.add(str(launch.get("environment")))
    return keys
