"""The backend interface every scratch store implements, and how a backend is found.

A backend is named in ``c.ScratchService.backend`` by its entry point in the
``pangeohub.scratch_backends`` group (pangeohub's own: ``s3``, ``gcs``, ``local``; a
package adds its own the same way) or as ``module:Class``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import import_module
from importlib.metadata import entry_points

from traitlets import Int, Unicode, validate
from traitlets.config import LoggingConfigurable

from .names import check_bucket, check_prefix, user_segment

ENTRY_POINTS = "pangeohub.scratch_backends"


class ScratchConfigError(Exception):
    """The scratch configuration cannot work; the message says what to change."""


class BackendUnavailable(Exception):
    """The store or its token service cannot be reached now (message has no secret)."""


@dataclass
class Issued:
    """Credentials issued for one user's prefix."""

    url: str
    credentials: dict = field(repr=False)
    expiration: float | None = None  # epoch seconds; None = does not expire

    def as_json(self, backend: str, user: str) -> dict:
        expires = None
        if self.expiration is not None:
            expires = datetime.fromtimestamp(self.expiration, UTC).isoformat()
        return {
            "user": user,
            "backend": backend,
            "url": self.url,
            "expiration": expires,
            "credentials": self.credentials,
        }


def backend_class(name: str) -> type[ScratchBackend]:
    """The backend class for ``name`` (an entry point's name, or ``module:Class``)."""
    try:
        if ":" in name:
            module_name, _, class_name = name.partition(":")
            cls = getattr(import_module(module_name), class_name)
        else:
            found = entry_points(group=ENTRY_POINTS, name=name)
            if not found:
                names = sorted(ep.name for ep in entry_points(group=ENTRY_POINTS))
                raise ScratchConfigError(
                    f"Unknown scratch backend {name!r}: set c.ScratchService.backend to one of "
                    f"{', '.join(names)} (or 'module:Class')."
                )
            cls = next(iter(found)).load()
    except (ImportError, AttributeError) as error:
        raise ScratchConfigError(
            f"Scratch backend {name!r} cannot be loaded ({type(error).__name__}: {error}); "
            "install its dependencies or fix c.ScratchService.backend."
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, ScratchBackend)):
        raise ScratchConfigError(f"Scratch backend {name!r} is not a ScratchBackend subclass.")
    return cls


class ScratchBackend(LoggingConfigurable):
    """A store with one prefix per user. Subclasses issue credentials for that prefix."""

    name = "base"
    scheme = "file"

    bucket = Unicode(
        "", help="The bucket holding every user's scratch prefix (S3/GCS bucket name)."
    ).tag(config=True)
    prefix = Unicode(
        "scratch", help="The prefix inside the bucket under which each user gets <prefix>/<user>/."
    ).tag(config=True)
    expiry_days = Int(
        7, min=1, help="Scratch data older than this many days is deleted (lifecycle or sweep)."
    ).tag(config=True)

    @validate("prefix")
    def _check_prefix(self, proposal):
        try:
            return check_prefix(proposal.value)
        except ValueError as error:
            raise ScratchConfigError(str(error)) from None

    clock = staticmethod(time.time)  # epoch seconds; tests assign their own clock

    def now(self) -> float:
        return self.clock()

    def check_config(self) -> None:
        """Raise :class:`ScratchConfigError` if the settings cannot work (no I/O)."""
        try:
            check_bucket(self.bucket)
        except ValueError as error:
            raise ScratchConfigError(f"{error} Set c.{type(self).__name__}.bucket.") from None

    def key_prefix(self, user: str) -> str:
        """The object-key prefix of ``user``'s scratch space, ending in ``/``."""
        parts = [self.prefix, user_segment(user)]
        return "/".join(p for p in parts if p) + "/"

    def url(self, user: str) -> str:
        """``<scheme>://<bucket>/<prefix>/<user>`` (no trailing slash)."""
        return f"{self.scheme}://{self.bucket}/{self.key_prefix(user).rstrip('/')}"

    async def start(self) -> None:
        """Check configuration and apply/verify the expiry rule (may raise)."""
        self.check_config()

    async def stop(self) -> None:
        """Release clients."""

    async def credentials(self, user: str) -> Issued:
        """Credentials reaching only ``user``'s prefix (cached; raise BackendUnavailable)."""
        raise NotImplementedError

    def prepare(self, user: str) -> None:
        """Make ``user``'s scratch space usable before their server starts (the hub calls
        it at every start, without any credential request). A bucket prefix needs nothing."""

    async def ensure_expiry(self) -> None:
        """Apply and verify (or run) the deletion of data older than ``expiry_days``."""

    def client_files(self, command: str, service_url: str = "") -> dict[str, str]:
        """Client configuration files (name -> text, no secrets) running ``command``."""
        return {}

    def client_environment(self, user: str, files: dict[str, str]) -> dict[str, str]:
        """Variables so the standard clients find credentials (``files``: name -> path)."""
        return {}


class ExpiringCredentials(ScratchBackend):
    """A backend whose credentials expire: cached per user, renewed before expiry."""

    duration_seconds = Int(
        3600,
        min=900,
        help="Lifetime of issued credentials in seconds (S3: at most MaxSessionDuration).",
    ).tag(config=True)
    renew_before_seconds = Int(
        1200,
        min=0,
        help="""Issue new credentials when the cached ones have less than this many seconds left.

        Keep it above 900 s: boto3 re-runs ``credential_process`` once fewer than 15 minutes
        remain, and should then get fresh credentials rather than the same ones again.""",
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._cache: dict[str, Issued] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.issued_count = 0

    def check_config(self) -> None:
        super().check_config()
        if self.renew_before_seconds >= self.duration_seconds:
            raise ScratchConfigError(
                f"c.{type(self).__name__}.renew_before_seconds ({self.renew_before_seconds}) must "
                f"be less than duration_seconds ({self.duration_seconds})."
            )

    def _fresh(self, issued: Issued | None) -> bool:
        if issued is None or issued.expiration is None:
            return issued is not None
        return issued.expiration - self.now() > self.renew_before_seconds

    async def cached(self, user: str, issue: Callable[[str], Awaitable[Issued]]) -> Issued:
        """The cached credentials of ``user``, or new ones from ``issue(user)``."""
        issued = self._cache.get(user)
        if self._fresh(issued):
            return issued
        lock = self._locks.setdefault(user, asyncio.Lock())
        async with lock:
            issued = self._cache.get(user)
            if not self._fresh(issued):
                issued = await issue(user)
                self.issued_count += 1
                self._cache[user] = issued
        return issued
