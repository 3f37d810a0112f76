"""What the hub reported about each user's running servers, kept across gateway restarts.

A record (the server's image, its workers' environment, on Kubernetes its pod) is kept
per user and server tag ("/" or "/<name>"): in memory and, with a path, one file (0600)
per user in ``<path>.d``, so a server's start rewrites only its user's file. A single
file at ``path``, as earlier versions kept, is read once and split up.
"""

from __future__ import annotations

import contextlib
import json
import os
from urllib.parse import quote, unquote

from ..state import write_private


class ServerRecordStore:
    """user -> server tag -> record, as the hub reported them."""

    def __init__(self, path: str = ""):
        self.path = path
        self.by_user: dict[str, dict[str, dict]] = self._load()
        if path and os.path.isfile(path):  # an earlier version's single file: split it up
            for username in self.by_user:
                self.save(username)
            os.remove(path)

    def servers(self, username: str) -> dict[str, dict]:
        """``username``'s records by server tag (empty: none)."""
        return self.by_user.get(username, {})

    def get(self, username: str, server: str) -> dict | None:
        return self.servers(username).get(server)

    def put(self, username: str, server: str, record: dict) -> None:
        self.by_user.setdefault(username, {})[server] = record
        self.save(username)

    def adopt(self, username: str, server: str, record: dict) -> None:
        """Hold ``record`` in memory (kept elsewhere already, e.g. beside the server's pod)
        unless the hub reported the server since."""
        self.by_user.setdefault(username, {}).setdefault(server, record)

    def pop(self, username: str, server: str) -> dict | None:
        """Forget ``server``'s record (and write what is left); the record, if it was kept."""
        record = self.by_user.get(username, {}).pop(server, None)
        if record is not None:
            self.save(username)
        return record

    def _directory(self) -> str:
        return self.path + ".d"

    def _load(self) -> dict[str, dict[str, dict]]:
        if not self.path:
            return {}
        records: dict[str, dict[str, dict]] = {}
        if os.path.isfile(self.path):
            with open(self.path) as f:
                records = json.load(f)
        directory = self._directory()
        for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
            if entry.endswith(".json"):
                with open(os.path.join(directory, entry)) as f:
                    records[unquote(entry[: -len(".json")])] = json.load(f)
        return records

    def save(self, username: str) -> None:
        """Write ``username``'s records (and only theirs); none left: remove their file."""
        if not self.path:
            return
        os.makedirs(self._directory(), mode=0o700, exist_ok=True)
        path = os.path.join(self._directory(), quote(username, safe="") + ".json")
        records = self.by_user.get(username)
        if not records:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
            return
        write_private(path, json.dumps(records))
