"""A server's start on Kubernetes, watched: it fails early, says why, and leaves nothing.

KubeSpawner waits for the pod until ``start_timeout`` whatever happens to it. Beside its
start this watches the pod (:mod:`pangeohub.pod_troubles`): an image that keeps failing to
pull ends the start after ``image_pull_timeout``, no room in the cluster after
``scheduling_timeout``, each with a message saying so (:mod:`.kube_failures`). A start
that fails removes its pod and a claim made for it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from jupyterhub.spawner import SpawnException

from ..pod_troubles import pull_failure, unschedulable
from .kube_failures import (
    UNREACHABLE,
    StartFailure,
    explain,
    image_failure,
    scheduling_failure,
)

POLL_SECONDS = 0.25  # how often the pod (as the shared reflector has it) is looked at


class StartWatchdog:
    """KubeSpawner mixin: its ``_start`` within bounds, with failures explained (settings:
    ``image_pull_timeout``, ``scheduling_timeout``).

    Reads the pod with ``current_pod()`` (:class:`.kube_reflectors.SharedReflectors`) and
    forgets a claim made for a failed start with ``delete_claim_made_now()``
    (:class:`.kube_claims.LegacyClaims`).
    """

    async def _start(self):
        # the whole start ends within start_timeout, as when JupyterHub runs it
        deadline = time.monotonic() + self.start_timeout
        main = asyncio.ensure_future(super()._start())
        watchdog = asyncio.ensure_future(self.watch_pod())
        try:
            await asyncio.wait({main, watchdog}, return_when=asyncio.FIRST_COMPLETED)
            if not main.done() and watchdog.exception() is not None:
                main.cancel()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await main
                raise watchdog.exception()
            try:
                url = await asyncio.wait_for(main, max(deadline - time.monotonic(), 0))
            except TimeoutError:
                if not main.cancelled():
                    raise  # KubeSpawner's own timeout
                raise TimeoutError(f"start not finished in {self.start_timeout}s") from None
        except StartFailure as failure:
            await self.clean_failed_start()
            raise failure
        except SpawnException:
            raise
        except Exception as error:
            where = f"{self._log_name} in namespace {self.namespace}"
            failure = explain(error, where, self.start_timeout)
            if failure is None:
                raise
            if failure.reason == UNREACHABLE:
                self.mark_reflectors_stale()
            await self.clean_failed_start()
            raise failure from None
        finally:
            watchdog.cancel()
        return url

    async def watch_pod(self) -> None:
        """Fail early when the pod cannot pull its image or find room in the cluster, and
        say why it is not ready just before start_timeout ends the start."""
        pull_since = unscheduled_since = None
        give_up = time.monotonic() + max(self.start_timeout - 2, 1)
        while True:
            await asyncio.sleep(POLL_SECONDS)
            now, pod = time.monotonic(), self.current_pod()
            failed, unscheduled = pull_failure(pod), unschedulable(pod)
            pull_since = (pull_since or now) if failed else None
            unscheduled_since = (unscheduled_since or now) if unscheduled else None
            if failed and now - pull_since >= self.image_pull_timeout:
                raise image_failure(self.image, self._log_name, failed[1])
            if unscheduled and now - unscheduled_since >= self.scheduling_timeout:
                raise scheduling_failure(self._log_name, unscheduled, now - unscheduled_since)
            if now >= give_up:
                if failed:
                    raise image_failure(self.image, self._log_name, failed[1])
                if unscheduled:
                    raise scheduling_failure(self._log_name, unscheduled, now - unscheduled_since)
                return  # let KubeSpawner's own timeout say it

    async def clean_failed_start(self) -> None:
        """Leave nothing behind: the pod, and a claim made for this start alone."""
        try:
            await asyncio.wait_for(
                self.api.delete_namespaced_pod(
                    self.pod_name, self.namespace, grace_period_seconds=0
                ),
                self.k8s_api_request_timeout,
            )
        except Exception as error:  # already gone, or the API is unreachable
            self.log.debug("Cleaning pod %s: %s", self.pod_name, type(error).__name__)
        await self.delete_claim_made_now()
