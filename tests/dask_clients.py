"""One event loop for every Dask Gateway client the test process makes.

A ``Gateway()`` given no loop starts a thread of its own and gives it 10 s to run
(distributed's ``LoopRunner``); on a busy 2-core machine one such start took longer and
the test failed before it began. The clients share this loop, started once.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from distributed import Client
from distributed.utils import LoopRunner

_lock = threading.Lock()
_runner: LoopRunner | None = None


def shared_loop():
    """The tests' Dask event loop (an IOLoop running in a thread of its own)."""
    global _runner
    with _lock:
        if _runner is None:
            _runner = LoopRunner(asynchronous=False)
            _runner.start()
        return _runner.loop


def stop_shared_loop() -> None:
    """At the session's end: the clients still on the loop (of clusters a test stopped the
    hard way, retrying to reach them) closed, and the loop stopped, without their logs."""
    global _runner
    with _lock:
        if _runner is None:
            return
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        for client in list(Client._instances):
            with contextlib.suppress(Exception):
                client.close(timeout=2)
        _runner.stop()
        _runner = None
