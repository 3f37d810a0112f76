"""KubeSpawner's shared reflectors, made to hold at scale and through API outages.

- A reflector remembers whether its last full list failed, and a start that ends without a
  first load always fails that load (so the next start replaces it; see
  :class:`.kube_reflectors.SharedReflectors`).
- A watch that ends resumes from the last resourceVersion, as client-go's informers do,
  instead of listing every pod and event again: the API server ends a watch every
  ``timeout_seconds`` (10), so KubeSpawner's reflectors otherwise parse every object in
  the namespace every 10 seconds, a cost that grows with the number of servers.
- The events reflector keeps its events by pod, so a server's progress reads its own pod's
  events, not a sort of every event in the namespace.
"""

from __future__ import annotations

import asyncio
import time


def retrieve(future: asyncio.Future) -> None:
    """Mark a finished future's exception as seen (asyncio logs unseen ones)."""
    if future.done() and not future.cancelled():
        future.exception()


class TrackFailures:
    """Reflector mixin: remembers whether its last full list failed (API unreachable)."""

    failing = False

    async def start(self):
        """KubeSpawner's, but a start that ends without a first load always fails it."""
        try:
            await super().start()
        except BaseException as error:  # also cancelled: nothing else would finish the load
            self.failing = True
            if not self.first_load_future.done():
                if not isinstance(error, Exception):
                    error = RuntimeError(f"the first list of {self.kind} was interrupted")
                self.first_load_future.set_exception(error)
                retrieve(self.first_load_future)
            raise

    async def _list_and_update(self, resource_version=None):
        try:
            version = await super()._list_and_update(resource_version)
        except Exception:
            self.failing = True
            raise
        self.failing = False
        return version


class ResumeWatches:
    """Reflector mixin: between full lists, a watch restart resumes from the last version.

    KubeSpawner's watch loop calls ``_list_and_update(version)`` before every watch, with
    the version of the last event seen; after an error it passes ``"0"``. Here a restart
    with a known version, within ``relist_seconds`` of the last full list, returns that
    version unchanged: the next watch replays whatever happened since, and nothing is
    listed. The version is then never older than ``relist_seconds``, well within the API
    server's watch cache; an expired one (410 Gone) is an error, and errors list again.
    """

    listed_at: float | None = None

    @property
    def relist_seconds(self) -> float:
        return float(getattr(self.parent, "reflector_relist_seconds", 0) or 0)

    async def _list_and_update(self, resource_version=None):
        resuming = (
            resource_version not in (None, "0")
            and self.listed_at is not None
            and time.monotonic() - self.listed_at < self.relist_seconds
        )
        if resuming:
            return resource_version
        version = await super()._list_and_update(resource_version)
        self.listed_at = time.monotonic()
        return version


class EventsByPod(dict):
    """A reflector's events (key -> event) that also keeps them by involved pod's name."""

    def __init__(self, events=()):
        super().__init__()
        self.by_pod: dict[str, dict[str, dict]] = {}
        for key, event in dict(events).items():
            self[key] = event

    @staticmethod
    def _pod_name(event: dict) -> str:
        return (event.get("involvedObject") or {}).get("name") or ""

    def __setitem__(self, key, event):
        old = self.get(key)
        if old is not None and self._pod_name(old) != self._pod_name(event):
            self._forget(key, old)
        super().__setitem__(key, event)
        self.by_pod.setdefault(self._pod_name(event), {})[key] = event

    def pop(self, key, *default):
        if key not in self:
            return super().pop(key, *default)
        event = super().pop(key)
        self._forget(key, event)
        return event

    def __delitem__(self, key):
        self.pop(key)

    def _forget(self, key, event) -> None:
        name = self._pod_name(event)
        events = self.by_pod.get(name)
        if events is not None:
            events.pop(key, None)
            if not events:
                del self.by_pod[name]

    def for_pod(self, name: str) -> list[dict]:
        """The pod's events, oldest first (as KubeSpawner's ``events`` sorts them all)."""
        return sorted(
            self.by_pod.get(name, {}).values(),
            key=lambda event: event["lastTimestamp"] or event["eventTime"],
        )


class IndexEventsByPod:
    """Events reflector mixin: its resources are an :class:`EventsByPod`."""

    async def _list_and_update(self, resource_version=None):
        version = await super()._list_and_update(resource_version)
        if not isinstance(self.resources, EventsByPod):
            self.resources = EventsByPod(self.resources)
        return version


_MADE: dict[type, type] = {}


def pangeo_reflector(reflector_class: type) -> type:
    """reflector_class with pangeohub's mixins (one subclass per class)."""
    if issubclass(reflector_class, TrackFailures):
        return reflector_class
    if reflector_class not in _MADE:
        mixins = [TrackFailures, ResumeWatches]
        if reflector_class.kind == "events":
            mixins.append(IndexEventsByPod)
        name = f"Pangeo{reflector_class.__name__}"
        _MADE[reflector_class] = type(name, (*mixins, reflector_class), {"__module__": __name__})
    return _MADE[reflector_class]
