"""On Kubernetes: BinderHub builds the image, the hub starts it.

BinderHub runs API-only as a hub service (as binderhub-service runs it); the launcher asks
it ``GET <binderhub_url>build/<provider>/<spec>?build_only=true`` with the person's own
token and follows its event stream: ``waiting``, repo2docker's log lines, and finally
``ready`` with ``imageName`` (or ``failed``). The events are passed on in the launcher's
own shape, and the image is started with KubeSpawner's ``image`` (see
:func:`launched_image_option`).

A missing ref is a 4xx, not only a ``failed`` event: BinderHub resolves the ref with its
repo providers (their credentials, rate-limit tokens and banned specs) *before* its first
``waiting`` event, so a ``failed`` event before any build step is BinderHub refusing the
request itself. Such a first event carries ``status`` (:func:`refusal_status`) and the
launcher answers with that status instead of opening its stream. The hub does not resolve
refs itself: it would need the same network access and credentials as BinderHub's
providers, and could disagree with them (private repositories, GitHub Enterprise, Zenodo).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from urllib.parse import quote

import aiohttp
import yarl

from ..policy import PolicyError
from ..refusal import refusal
from .builder import event
from .eventstream import data_events
from .launch import Builds, Built, LaunchRequest
from .spec import LaunchError
from .tokens import build_token


def refusal_status(message: str) -> int:
    """The HTTP status of BinderHub's refusal (a ``failed`` event before any build step),
    from its messages (binderhub/builder.py): unknown provider or unresolvable ref 404,
    a banned repository 403, anything else about the request 422."""
    if message.startswith("No provider found") or "Could not resolve ref" in message:
        return 404
    if "disabled from launching" in message:
        return 403
    return 422


def _translate(raw: dict) -> dict:
    """A BinderHub event in the launcher's shape (``log`` for repo2docker's lines)."""
    phase = str(raw.get("phase", ""))
    message = str(raw.get("message", "")).rstrip("\n")
    if phase in ("failed", "failure"):
        return event("failed", message or "BinderHub could not build the image.", 100, line="")
    if phase == "ready" and raw.get("imageName"):
        return event(
            "built", message or "Image built.", 60, image=str(raw["imageName"]), reused=False
        )
    if phase in ("waiting", "fetching", "pushing", "built"):
        return event(phase if phase != "built" else "building", message, 20)
    return event("log", message)


def _ended(status, building: bool) -> dict:
    failed = event(
        "failed",
        f"BinderHub ended the build without an image (HTTP {status}). "
        "Try again, or tell a hub admin.",
        100,
        line="",
    )
    if not building:
        failed["status"] = 502  # BinderHub unreachable or refusing the hub
    return failed


async def binderhub_build(
    binderhub_url: str, provider: str, spec: str, token: str, timeout: float
) -> AsyncIterator[dict]:
    """BinderHub's build events for ``provider/spec``, ending with ``built`` (``image``)
    or ``failed`` (with ``status`` when BinderHub refused before building).

    BinderHub keeps the stream open after ``ready``: the connection is closed when the
    generator ends (aiohttp closes it on leaving the request; tornado's client has no way
    to abort a streaming fetch, which would hold the connection until BinderHub drops it).
    """
    url = yarl.URL(
        f"{binderhub_url.rstrip('/')}/build/{quote(provider)}/{spec}?build_only=true",
        encoded=True,  # the spec as the person's link has it, still URL-encoded
    )
    headers = {"Authorization": f"token {token}", "Accept": "text/event-stream"}
    building = False  # a build step was reported: a failure from now on is the build's
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
            async with http.get(url, headers=headers) as response:
                if response.status != 200:
                    yield _ended(response.status, building)
                    return
                buffer = b""
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    while b"\n\n" in buffer:
                        block, buffer = buffer.split(b"\n\n", 1)
                        for raw in data_events(block):
                            translated = _translate(raw)
                            if translated["phase"] == "failed" and not building:
                                translated["status"] = refusal_status(translated["message"])
                            building = True
                            yield translated
                            if translated["phase"] in ("built", "failed"):
                                return
                yield _ended(response.status, building)
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        yield _ended(type(error).__name__, building)


class BinderHubBuilds(Builds):
    """Builds by BinderHub at ``url`` (its hub service ``service``), each with the
    person's own token for that build only; ``timeout``: seconds a build may take."""

    def __init__(self, url: str, service: str, timeout: float):
        self.url = url
        self.service = service
        self.timeout = timeout

    async def build(self, request: LaunchRequest) -> AsyncIterator[dict | Built]:
        image = None
        with build_token(request.user, self.service) as token:  # revoked when the build ends
            spec = request.raw_spec
            stream = binderhub_build(self.url, request.provider, spec, token, self.timeout)
            async with aclosing(stream):
                async for item in stream:
                    status = item.pop("status", None)
                    if status:  # BinderHub refused the request itself, before building
                        raise LaunchError(status, item["message"])
                    yield item
                    if item["phase"] == "failed":
                        return
                    if item["phase"] == "built":
                        image = item["image"]
        if not image:
            message = "BinderHub ended the build without naming an image. Please try again."
            yield event("failed", message, 100)
            return
        tag = image.rsplit(":", 1)[-1] if ":" in image else image
        option = {"image": image, "repository": request.repo.url, "ref": request.repo.ref}
        yield Built(re.sub(r"[^a-z0-9]", "", tag.lower()) or "image", option)


def launched_image_option(spawner, image_prefix: str) -> str | None:
    """The image a launch asks a KubeSpawner server to run, if any; only BinderHub's own
    images (``image_prefix``) are accepted, anything else is a 403."""
    launch = (spawner.user_options or {}).get("binder")
    if launch is None:
        return None
    image = launch.get("image") if isinstance(launch, dict) else None
    if not isinstance(image, str) or not image:
        raise refusal(PolicyError(400, "This launch names no image; open its link again."))
    if not image_prefix or not image.startswith(image_prefix) or any(c.isspace() for c in image):
        raise refusal(
            PolicyError(
                403,
                f"The image {image[:128]!r} was not built by this hub's BinderHub, so it "
                "cannot be launched here. Open the repository's launch link instead.",
            )
        )
    return image
