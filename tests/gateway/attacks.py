"""What a user can do from their own scheduler (``client.run_on_scheduler``)."""

from __future__ import annotations


def forged_heartbeat(count: int, repeat: float = 30):
    """A function for ``client.run_on_scheduler`` that reads the scheduler's own gateway
    token and posts the gateway a heartbeat like the real one, but with ``count``
    workers, then keeps posting it every 0.2 s for ``repeat`` seconds (so the
    scheduler's own heartbeats cannot undo it); it returns the first HTTP status.
    (Nested, so it is pickled by value.)"""

    def forge(dask_scheduler=None):
        import json
        import os
        import threading
        import time
        import urllib.request

        token = os.environ["DASK_GATEWAY_API_TOKEN"]
        if os.path.isfile(token):  # Kubernetes: a path in the credentials secret
            with open(token) as f:
                token = f.read().strip()
        name = os.environ["DASK_GATEWAY_CLUSTER_NAME"]
        url = f"{os.environ['DASK_GATEWAY_API_URL']}/v1/clusters/{name}/heartbeat"
        workers = [ws.name for ws in dask_scheduler.workers.values()]
        body = {
            "count": count,
            "active_workers": workers,
            "closing_workers": [],
            "closed_workers": [],
        }
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )

        def post():
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status

        def keep_posting():
            deadline = time.monotonic() + repeat
            while time.monotonic() < deadline:
                time.sleep(0.2)
                try:
                    post()
                except OSError:
                    return

        status = post()
        threading.Thread(target=keep_posting, daemon=True).start()
        return status

    return forge
