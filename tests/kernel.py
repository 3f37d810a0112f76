"""Run code in a server's kernel the way a person's notebook does (Jupyter's kernel
protocol over the server's websocket), and read back what it printed."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import requests
import websocket


@dataclass
class Result:
    output: str  # what the cell printed (stdout and stderr)
    error: str | None  # the exception's name and message, if it raised
    died: bool  # the kernel died (restarting/dead) instead of finishing


class Kernel:
    """One kernel of a server, driven over its channels websocket."""

    def __init__(self, server_url: str, token: str, timeout: float = 60):
        self.server_url = server_url.rstrip("/") + "/"
        self.headers = {"Authorization": f"token {token}"}
        response = requests.post(
            f"{self.server_url}api/kernels", headers=self.headers, json={}, timeout=timeout
        )
        response.raise_for_status()
        self.id = response.json()["id"]
        ws_url = self.server_url.replace("http://", "ws://") + f"api/kernels/{self.id}/channels"
        self.ws = websocket.create_connection(
            ws_url, header=[f"Authorization: token {token}"], timeout=timeout
        )
        self.session = uuid.uuid4().hex

    def run(self, code: str, timeout: float = 60) -> Result:
        """Execute ``code``; wait until the kernel is idle again or has died."""
        msg_id = uuid.uuid4().hex
        self.ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "",
                        "session": self.session,
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                }
            )
        )
        output, error = [], None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            kind, content = msg.get("msg_type"), msg.get("content", {})
            if kind == "status" and content.get("execution_state") in ("restarting", "dead"):
                return Result("".join(output), error, True)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if kind == "stream":
                output.append(content["text"])
            elif kind == "error":
                error = f"{content['ename']}: {content['evalue']}"
            elif kind == "status" and content.get("execution_state") == "idle":
                return Result("".join(output), error, False)
        raise TimeoutError(f"cell did not finish in {timeout}s: {''.join(output)}")

    def close(self) -> None:
        self.ws.close()
        requests.delete(f"{self.server_url}api/kernels/{self.id}", headers=self.headers, timeout=30)
