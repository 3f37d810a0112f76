"""Dask Gateway clients for the test process.

A ``Gateway()`` starts an event-loop thread of its own and gives it 10 s to run
(distributed's ``LoopRunner``, which then fails with a bare ``AssertionError``); on a busy
2-core machine one such start took longer and the test failed before it began. A client
whose loop did not start is made again, up to three times. (One loop shared by every
client is no way out: a client collected on that loop's own thread closes itself by
waiting on that loop, and hangs.)
"""

from __future__ import annotations

import contextlib

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


def close(gateway: Gateway) -> None:
    """Close a client for good (dask_gateway's ``__del__`` would close it again later,
    touching its stopped loop, and warn in whatever test runs then)."""
    gateway.close()
    gateway.__dict__.pop("_loop_runner", None)


def shutdown(cluster) -> None:
    """Shut a cluster down and close its own client for good (see ``close``)."""
    cluster.shutdown()
    cluster.gateway.__dict__.pop("_loop_runner", None)


@contextlib.contextmanager
def closing(gateway: Gateway):
    """``with closing(new_gateway(...)) as gateway:``, closed for good at the end."""
    try:
        yield gateway
    finally:
        close(gateway)
