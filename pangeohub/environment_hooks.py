"""Hooks of a server's start and stop: environment hooks (functions of a spawner returning
variables, merged in order), and how any hook's failure is logged."""

from __future__ import annotations

import asyncio
from inspect import isawaitable


def log_hook_failure(log, what: str, hook, who: str, error: BaseException, then: str = ""):
    """Log that ``hook`` (a ``what``: "Environment hook", "Stop hook", ...) failed for
    ``who``: by name and error type, never the error's message, which may hold a secret."""
    name = getattr(hook, "__qualname__", None) or repr(hook)
    log.error("%s %s failed for %s (%s)%s.", what, name, who, type(error).__name__, then)


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
            log_hook_failure(
                spawner.log, what, hook, spawner._log_name, error, "; going on without it"
            )
            return {}

    env: dict[str, str] = {}
    for result in await asyncio.gather(*(run(hook) for hook in hooks)):
        env.update(result)
    return env
