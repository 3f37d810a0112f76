"""Launches built on this machine: the ref resolved with git, the environment built (or
reused) with uv by :class:`~.builder.BinderBuilder`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing

from .builder import BinderBuilder, InUse, event
from .launch import OPTION, Builds, Built, LaunchRequest


class LocalBuilds(Builds):
    """Builds on this machine; ``in_use`` names the environments servers run in."""

    def __init__(self, builder: BinderBuilder, in_use: InUse):
        self.builder = builder
        self.in_use = in_use

    async def build(self, request: LaunchRequest) -> AsyncIterator[dict | Built]:
        builder, repo, person = self.builder, request.repo, request.user.name
        builder.check_can_build(person)
        commit = await builder.resolve(repo, person)
        yield event("resolved", f"{repo.display} is commit {commit[:12]}.", 3, commit=commit)
        key = None
        async with aclosing(builder.build(repo, commit, person, self.in_use)) as build:
            async for item in build:
                yield item
                if item["phase"] == "failed":
                    return
                if item["phase"] == "built":
                    key = item["environment"]
        builder.mark_used(key)
        option = {"environment": key, "repository": repo.url, "ref": repo.ref, "commit": commit}
        yield Built(commit, option)


def keys_in_use(users) -> set[str]:
    """Environments that running (or starting) servers of the hub's ``users`` use."""
    keys = set()
    for user in list(users.values()):
        for spawner in list(user.spawners.values()):
            launch = (spawner.user_options or {}).get(OPTION)
            if isinstance(launch, dict) and (spawner.active or spawner.ready):
                keys.add(str(launch.get("environment")))
    return keys
