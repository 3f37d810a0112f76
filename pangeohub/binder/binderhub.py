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

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..policy import PolicyError
from ..spawner.mixin import refusal
from .builder import event


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


async def binderhub_build(
    binderhub_url: str, provider: str, spec: str, token: str, timeout: float
) -> AsyncIterator[dict]:
    """BinderHub's build events for ``provider/spec``, ending with ``built`` (``image``)
    or ``failed`` (with ``status`` when BinderHub refused before building); the stream is
    closed at the end (BinderHub keeps it open)."""
    queue: asyncio.Queue = asyncio.Queue()
    buffer = b""

    def on_chunk(chunk: bytes) -> None:
        nonlocal buffer
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            for line in block.decode(errors="replace").splitlines():
                if line.startswith("data:"):
                    try:
                        queue.put_nowait(json.loads(line[len("data:") :].strip()))
                    except ValueError:
                        pass

    building = False  # a build step was reported: a failure from now on is the build's
    url = f"{binderhub_url.rstrip('/')}/build/{quote(provider)}/{spec}?build_only=true"
    request = HTTPRequest(
        url,
        headers={"Authorization": f"token {token}", "Accept": "text/event-stream"},
        streaming_callback=on_chunk,
        request_timeout=timeout,
    )
    fetch = asyncio.ensure_future(AsyncHTTPClient().fetch(request, raise_error=False))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, fetch}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                translated = _translate(getter.result())
                if translated["phase"] == "failed" and not building:
                    translated["status"] = refusal_status(translated["message"])
                building = True
                yield translated
                if translated["phase"] in ("built", "failed"):
                    return
                continue
            getter.cancel()
            if not queue.empty():
                continue
            try:
                status = fetch.result().code
            except (HTTPClientError, OSError) as error:
                status = getattr(error, "code", None) or type(error).__name__
            failed = event(
                "failed",
                f"BinderHub ended the build without an image (HTTP {status}). "
                "Try again, or tell a hub admin.",
                100,
                line="",
            )
            if not building:
                failed["status"] = 502  # BinderHub unreachable or refusing the hub
            yield failed
            return
    finally:
        if not fetch.done():
            fetch.cancel()  # BinderHub keeps the stream open after ready: close it


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
