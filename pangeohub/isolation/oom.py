"""A Jupyter Server extension: say so when the server's memory limit killed a process.

With a memory cgroup the kernel ends the biggest process past the limit, which is the
kernel that allocated too much; JupyterLab then shows that the kernel died. This
extension watches the cgroup's ``oom_kill`` counter and logs one line per kill saying
it was out of memory and what the limit is, so the person (and the admin reading the
hub's log) learns why.
"""

from __future__ import annotations

from tornado.ioloop import PeriodicCallback

from ..policy import format_bytes
from .cgroups import own_oom_events, read_oom_kills

INTERVAL_SECONDS = 1.0


def _jupyter_server_extension_points():
    return [{"module": "pangeohub.isolation.oom"}]


def oom_message(kills: int, limit: int | None) -> str:
    where = f" ({format_bytes(limit)})" if limit else ""
    return (
        f"pangeohub: out of memory: {kills} process(es) of this server used more than its "
        f"memory limit{where} and were stopped; a kernel that died was restarted. "
        "Use less memory or choose a larger profile."
    )


def _load_jupyter_server_extension(serverapp):
    events = own_oom_events()
    if events is None:
        return
    limit_file = events.with_name("memory.limit_in_bytes")
    if not limit_file.exists():
        limit_file = events.with_name("memory.max")
    try:
        limit = int(limit_file.read_text().strip())
    except (OSError, ValueError):
        limit = None
    seen = read_oom_kills(events)

    def check():
        nonlocal seen
        kills = read_oom_kills(events)
        if kills > seen:
            serverapp.log.warning(oom_message(kills - seen, limit))
            seen = kills

    PeriodicCallback(check, INTERVAL_SECONDS * 1000).start()
