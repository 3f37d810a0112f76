"""What a person is told when their server on Kubernetes cannot start, and the log line.

Each function turns what went wrong (a Kubernetes API error, an unreachable API, an image
that cannot be pulled, no room in the cluster, a start that took too long) into a
:class:`StartFailure`: a message the person can act on, never a secret or a traceback, and
the admin's log line with the details.
"""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
from jupyterhub.spawner import SpawnException
from kubernetes_asyncio.client.rest import ApiException

# what a quota's resource is called in the message
QUOTA_WHAT = {
    "pods": "servers",
    "persistentvolumeclaims": "disks",
    "requests.storage": "disk space",
    "requests.cpu": "CPU",
    "limits.cpu": "CPU",
    "requests.memory": "memory",
    "limits.memory": "memory",
}
CONNECTION_ERRORS = (aiohttp.ClientError, ConnectionError)
UNREACHABLE = "k8s-unreachable"  # the reason of a failure to reach the API


class StartFailure(SpawnException):
    """A start that failed for a reason the user is told in plain words.

    ``jupyterhub_message`` is what the person sees; ``log_message`` is the admin's log line.
    """

    def __init__(self, message: str, *, reason: str, log_message: str, status_code: int = 503):
        super().__init__(message, reason=reason, log_message=log_message, status_code=status_code)
        self.jupyterhub_message = message


def status_message(error: ApiException) -> str:
    """The message of a Kubernetes Status body, or the reason."""
    try:
        return json.loads(error.body or "{}").get("message") or str(error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)


def image_failure(image: str, who: str, waiting: dict) -> StartFailure:
    """The server's image cannot be pulled (``waiting``: the container's waiting state)."""
    return StartFailure(
        f"Your server could not be started: its image {image!r} could not be "
        "downloaded. Choose another profile or image, or tell a hub admin.",
        reason="image",
        log_message=f"Image pull failing for {who} ({image}): "
        f"{waiting.get('reason')}: {waiting.get('message', '')}",
        status_code=502,  # the registry, upstream of the cluster, failed
    )


def scheduling_failure(who: str, why: str, waited: float) -> StartFailure:
    """No node has room for the server (``why``: the scheduler's words)."""
    return StartFailure(
        "Your server could not be started: the cluster has no room for a server "
        f"of this size right now ({why}). Choose a smaller profile or try again later.",
        reason="unschedulable",
        log_message=f"Pod for {who} not scheduled in {waited:.0f}s: {why}",
        status_code=503,
    )


def explain(error: Exception, where: str, start_timeout: float) -> StartFailure | None:
    """What went wrong talking to Kubernetes (``where``: the server and namespace) as a
    message a person can act on; None for an error this does not know."""
    if isinstance(error, ApiException):
        return _api_failure(error, where)
    timed_out = isinstance(error, TimeoutError | asyncio.TimeoutError)
    if isinstance(error, CONNECTION_ERRORS) or (timed_out and "Could not" in str(error)):
        return StartFailure(
            "Your server could not be started because the hub cannot reach the Kubernetes "
            "cluster right now. Please try again in a minute; if this keeps happening, "
            "tell a hub admin.",
            reason=UNREACHABLE,
            log_message=f"Kubernetes API unreachable starting {where}: "
            f"{type(error).__name__}: {error}",
            status_code=503,
        )
    if timed_out:
        return StartFailure(
            f"Your server did not become ready within {start_timeout} seconds. "
            "Please try again; if this keeps happening, tell a hub admin.",
            reason="timeout",
            log_message=f"Pod for {where} not ready in {start_timeout}s: {error}",
            status_code=503,
        )
    return None


def _api_failure(error: ApiException, where: str) -> StartFailure:
    body = f"{error.reason or ''} {error.body or ''}"
    if error.status == 403 and "exceeded quota" in body:
        match = re.search(r"requested: ([\w.]+)=", body)
        what = QUOTA_WHAT.get(match.group(1), match.group(1)) if match else "resources"
        return StartFailure(
            f"Your server could not be started: this hub's quota of {what} in the "
            "cluster is used up. Stop or delete a server you no longer need, or ask a "
            "hub admin to raise the quota.",
            reason="quota",
            log_message=f"Quota exceeded starting {where}: {status_message(error)}",
            status_code=403,
        )
    if error.status in (401, 403):
        return StartFailure(
            "Your server could not be started: the cluster refused the hub permission "
            "to create it. This is a problem with the hub's set-up; please tell a hub admin.",
            reason="forbidden",
            log_message=f"Kubernetes forbade starting {where}: {status_message(error)}"
            " (check the hub's RBAC Role)",
            status_code=503,
        )
    return StartFailure(
        f"Your server could not be started: the cluster answered with an error "
        f"(HTTP {error.status}). Please try again; if this keeps happening, "
        "tell a hub admin.",
        reason="k8s-error",
        log_message=f"Kubernetes API error starting {where}: {error.status} "
        f"{status_message(error)}",
        status_code=502,
    )
