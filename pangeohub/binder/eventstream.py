"""Reading a server-sent event stream (BinderHub's build stream, the hub's progress API)."""

from __future__ import annotations

import json


def data_events(text: bytes | str) -> list[dict]:
    """The JSON ``data:`` events in ``text`` (comments, keep-alives and bad JSON skipped)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    found = []
    for line in text.splitlines():
        if line.startswith("data:"):
            try:
                body = json.loads(line[len("data:") :].strip())
            except ValueError:
                continue
            if isinstance(body, dict):
                found.append(body)
    return found
