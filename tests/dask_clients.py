"""Dask Gateway clients for the test process.

A ``Gateway()`` starts an event-loop thread of its own and gives it 10 s to run
(distributed's ``LoopRunner``, which then fails with a bare ``AssertionError``); on a busy
2-core machine one such start took longer and the test failed before it began. A client
whose loop did not start is made again, up to three times. (One loop shared by every
client is no way out: a client collected on that loop's own thread closes itself by
waiting on that loop, and hangs.)
"""

from __future__ import annotations

from dask_gateway import Gateway


def new_gateway(*args, **kwargs) -> Gateway:
    """``Gateway(*args, **kwargs)``, made again if its event loop did not start."""
    for attempt in range(3):
        try:
            return Gateway(*args, **kwargs)
        except AssertionError:  # distributed's LoopRunner: the loop did not start in 10 s
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
