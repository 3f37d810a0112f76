"""Environment hooks: functions of a spawner returning variables, merged in order."""

from __future__ import annotations

import asyncio
from inspect import isawaitable


async def collect_environment(hooks, spawner, what: str) -> dict[str, str]:
    """Merge the variables ``hook(spawner)`` (maybe async) returns, a later hook's winning.

    The hooks run concurrently: each may wait on a service (scratch, Dask Gateway), and
    one start should wait for the slowest of them, not for their sum. A failing hook is
    logged by name and error type (never its message, which may hold a secret) and skipped.
    """

    async def run(hook) -> dict[str, str]:
        try:
            result = hook(spawner)
            if isawaitable(result):
                result = await result
            return {str(k): str(v) for k, v in (result or {}).items()}
        except Exception as error:
            spawner.log.error(
                "%s %s failed for %s (%s); going on without it.",
                what,
                getattr(hook, "__qualname__", repr(hook)),
                spawner._log_name,
                type(error).__name__,
            )
            return {}

    env: dict[str, str] = {}
    for result in await asyncio.gather(*(run(hook) for hook in hooks)):
        env.update(result)
    return env
