"""A check the gateway repeats in the background: every ``period`` seconds, a failed round
logged and the check tried again at the next one, until stopped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable


class Rounds:
    """``check()`` every ``period`` seconds, the first after ``first`` (default: a period)."""

    def __init__(
        self,
        check: Callable[[], Awaitable[object]],
        period: float,
        log: logging.Logger,
        what: str,
        first: float | None = None,
    ):
        self.check, self.period, self.log, self.what = check, period, log, what
        self.first = period if first is None else first
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        await asyncio.sleep(self.first)
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the next round tries again
                self.log.warning("%s failed: %r", self.what, error)
            await asyncio.sleep(self.period)
