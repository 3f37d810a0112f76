"""The spawner's side of KubeSpawner's shared reflectors: kept alive through API outages.

KubeSpawner keeps one pods reflector and one events reflector per hub, shared by every
server (its ``reflectors``, started by ``_start_reflector``). Here a start replaces one
that died, that failed its first list, or that is backing off after an outage, never
leaves one half loaded, and reads its own pod and events from them (the reflector
classes themselves are :mod:`.reflectors`).
"""

from __future__ import annotations

import asyncio
import time

from .reflectors import EventsByPod, pangeo_reflector, retrieve


class SharedReflectors:
    """KubeSpawner mixin: shared reflectors that a start restarts when they failed (setting:
    ``reflector_relist_seconds``, read by the reflectors)."""

    # class-wide: reflectors (by kind) to reload at the next start, after the API was unreachable
    _stale_reflectors: set[str] = set()

    @staticmethod
    def mark_reflectors_stale() -> None:
        """The API was unreachable: the next start reloads both reflectors."""
        SharedReflectors._stale_reflectors.update(("pods", "events"))

    async def _start_reflector(self, kind, reflector_class, replace=False, **kwargs):
        """Replace a reflector that died or that is backing off after an API outage.

        Reflectors are shared by every start: one start's failure must never leave one half
        loaded. Their start runs shielded from this start's cancellation (KubeSpawner cancels
        the events reflector's start when the pods one fails), and a first load that another
        start began is waited for at most k8s_api_request_retry_timeout seconds.
        """
        if not replace:
            await self._wait_first_load(kind)
        previous = self.shared_reflector(kind)
        if previous is not None and not replace and _needs_restart(previous, kind):
            self.log.info("Restarting the %s reflector", kind)
            replace = True
        reflector_class = pangeo_reflector(reflector_class)
        start_reflector = super()._start_reflector

        async def start():
            reflector = await start_reflector(kind, reflector_class, replace=replace, **kwargs)
            SharedReflectors._stale_reflectors.discard(kind)
            return reflector

        task = asyncio.ensure_future(start())
        task.add_done_callback(retrieve)  # its failure is this start's, or nobody's
        return await asyncio.shield(task)

    def shared_reflector(self, kind: str):
        """The hub's shared reflector of ``kind`` ("pods" or "events"), if started."""
        return self.pod_reflector if kind == "pods" else self.event_reflector

    async def _wait_first_load(self, kind: str) -> None:
        """Wait, bounded, for a first load of the shared reflector that is in progress."""
        deadline = time.monotonic() + self.k8s_api_request_retry_timeout
        while True:
            reflector = self.shared_reflector(kind)
            if reflector is None or reflector.first_load_future.done():
                return  # nothing loading: _start_reflector decides whether to (re)start it
            loaded = reflector.first_load_future
            try:
                await asyncio.wait_for(asyncio.shield(loaded), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                # not loaded yet, with the API slow or unreachable: reload it at the next start
                SharedReflectors._stale_reflectors.add(kind)
                raise TimeoutError(
                    f"Could not list {kind} within {self.k8s_api_request_retry_timeout}s"
                ) from None
            except asyncio.CancelledError:
                if not loaded.cancelled():
                    raise  # this start was cancelled
            except Exception:
                pass  # that load failed: the reflector is replaced

    @property
    def events(self):
        """KubeSpawner's: this pod's events since ``_last_event``, read from the events
        reflector's index by pod instead of a sort of every event in the namespace."""
        resources = getattr(self.event_reflector, "resources", None)
        if not isinstance(resources, EventsByPod):
            return super().events
        events = []
        for event in resources.for_pod(self.pod_name):
            if self._last_event and event["metadata"]["uid"] == self._last_event:
                events = []  # only the events after the marker a start set
            else:
                events.append(event)
        return events

    def current_pod(self) -> dict | None:
        """This server's pod as the shared pods reflector last saw it."""
        reflector = self.pod_reflector
        if reflector is None:
            return None
        return reflector.pods.get(f"{self.namespace}/{self.pod_name}")


def _needs_restart(reflector, kind: str) -> bool:
    """Whether a shared reflector failed its first load, died, is failing, or is stale."""
    loaded = reflector.first_load_future
    failed = loaded.done() and (loaded.cancelled() or loaded.exception() is not None)
    dead = loaded.done() and (reflector.watch_task is None or reflector.watch_task.done())
    failing = getattr(reflector, "failing", False)
    return failed or dead or failing or kind in SharedReflectors._stale_reflectors
