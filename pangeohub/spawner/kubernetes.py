"""Production spawner: pangeohub's policies on KubeSpawner (Zero to JupyterHub)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import re
import time

import aiohttp
from jupyterhub.spawner import SpawnException
from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import Dict, List, Unicode, default, validate

from ..lab.picker import describe, mark_previous
from ..numbers import FiniteFloat
from ..parts import hub_part
from ..policy import PolicyError, Profile
from .mixin import PangeoSpawnerMixin, refusal
from .reflectors import EventsByPod, pangeo_reflector, retrieve

_GiB, _MiB = 1024**3, 1024**2
_QUOTA_WHAT = {
    "pods": "servers",
    "persistentvolumeclaims": "disks",
    "requests.storage": "disk space",
    "requests.cpu": "CPU",
    "limits.cpu": "CPU",
    "requests.memory": "memory",
    "limits.memory": "memory",
}
_PULL_FAILURES = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
_CONNECTION_ERRORS = (aiohttp.ClientError, ConnectionError)


def quantity(size: int) -> str:
    """A byte count as a Kubernetes quantity: 2147483648 -> "2Gi"."""
    for suffix, unit in (("Gi", _GiB), ("Mi", _MiB)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


class StartFailure(SpawnException):
    """A start that failed for a reason the user is told in plain words.

    ``jupyterhub_message`` is what the person sees; ``log_message`` is the admin's log line.
    """

    def __init__(self, message: str, *, reason: str, log_message: str, status_code: int = 503):
        super().__init__(message, reason=reason, log_message=log_message, status_code=status_code)
        self.jupyterhub_message = message


# The value of an option's select (KubeSpawner's form, fancy-profiles) when the person
# typed their own value in the option's "--unlisted-choice" field.
UNLISTED = "unlisted_choice"


class PangeoKubeSpawner(PangeoSpawnerMixin, KubeSpawner):
    """KubeSpawner applying pangeohub's profiles, limits, disks and messages.

    Profiles become KubeSpawner's ``profile_list``, filtered by the user's groups each time
    the form is drawn and each time a server starts. Each server gets its own claim
    (``claim-{user_server}``), kept when it stops and deleted with the server.
    """

    profile_options = Dict(
        help="""KubeSpawner ``profile_options`` per profile slug, e.g.
        ``{"pangeo": {"image": {"display_name": "Image", "choices": {...},
        "unlisted_choice": {"enabled": True, "display_name": "Other image",
        "kubespawner_override": {"image": "{value}"}}}}}``.
        A user's unlisted choice is accepted only if it is in ``unlisted_choice_allowlist``
        or matches ``unlisted_choice_pattern``.
        """,
    ).tag(config=True)

    unlisted_choice_allowlist = List(
        Unicode(),
        help="Values (e.g. images) a user may type as an unlisted choice.",
    ).tag(config=True)

    unlisted_choice_pattern = Unicode(
        "",
        help="""Regular expression an unlisted choice must match in full to be accepted,
        e.g. ``(pangeo|quay\\.io/pangeo)/[a-z0-9-]+:[0-9.]+``. Empty: only the allowlist.""",
    ).tag(config=True)

    legacy_pvc_name_templates = List(
        Unicode(),
        default_value=[
            "claim-{escaped_username}{escaped_servername}",
            "claim-{escaped_user_server}",
        ],
        help="""Claim names of older deployments (Zero to JupyterHub before 4.0) to look for
        when a server has no claim under the current name. A claim found is used only if its
        hub.jupyter.org/username label or annotation names this user (and server).""",
    ).tag(config=True)

    image_pull_timeout = FiniteFloat(
        30,
        min=0,
        help="Seconds a server's image may keep failing to pull before the start fails.",
    ).tag(config=True)

    scheduling_timeout = FiniteFloat(
        300,
        min=0,
        help="""Seconds a server may wait for room in the cluster before the start fails.
        With a cluster autoscaler, keep it above the time a new node takes to join. A server
        still unscheduled when start_timeout ends fails with the same message.""",
    ).tag(config=True)

    reflector_relist_seconds = FiniteFloat(
        60,
        min=0,
        help="""Seconds between full lists of the pods and events the hub's shared reflectors
        watch. The API server ends every watch after ``c.ResourceReflector.timeout_seconds``
        (10); between full lists a new watch resumes from the last resourceVersion, as
        Kubernetes' own informers do, instead of listing every pod and event of the
        namespace again, a cost that grows with the number of servers. Keep it under the
        API server's watch cache window (a few minutes): an expired version (410 Gone)
        makes a full list, with an error in the hub's log. 0 lists at every watch, as
        KubeSpawner does.""",
    ).tag(config=True)

    @default("profile_list")
    def _default_profile_list(self):
        return self.kube_profile_list

    @validate("profile_list")
    def _empty_profile_list_is_unset(self, proposal):
        # Zero to JupyterHub's default singleuser.profileList is []: pangeohub's profiles.
        # configure(c) refuses any other profile_list at start-up (spawner/chart_settings.py).
        return proposal["value"] or self.kube_profile_list

    @default("apply_user_options")
    def _default_apply_user_options(self):
        # options are checked and applied at start, in load_user_options
        return lambda spawner, user_options: None

    @default("storage_pvc_ensure")
    def _default_storage_pvc_ensure(self):
        return True

    @default("volumes")
    def _default_volumes(self):
        return [{"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}]

    @default("volume_mounts")
    def _default_volume_mounts(self):
        return [{"name": "home", "mountPath": "/home/jovyan"}]

    @validate("pvc_name_template")
    def _one_claim_per_server(self, proposal):
        template = proposal["value"]
        if "{user_server}" not in template:
            raise ValueError(
                "PangeoKubeSpawner.pvc_name_template must contain {user_server}: "
                "each server has its own claim, never shared."
            )
        return template

    # -- profiles -------------------------------------------------------------

    def kube_profile_list(self, spawner=None) -> list[dict]:
        """KubeSpawner's profile_list: only the profiles this user may choose, the
        server's previous choice pre-selected."""
        entries = [self._kube_profile(p) for p in self.allowed_profiles()]
        return mark_previous(entries, (self.user_options or {}).get("profile"))

    def _kube_profile(self, profile: Profile) -> dict:
        override = copy.deepcopy(profile.kubespawner_override)
        override.update(self._resources(profile))
        entry = {
            "display_name": profile.display_name,
            "slug": profile.slug,
            "description": describe(profile),
            "default": profile.default,
            "kubespawner_override": override,
        }
        if profile.slug in self.profile_options:
            entry["profile_options"] = copy.deepcopy(self.profile_options[profile.slug])
        return entry

    @staticmethod
    def _resources(profile: Profile) -> dict:
        resources = {
            "image": profile.image,
            "cpu_limit": profile.cpu_limit,
            "mem_limit": profile.mem_limit,
            "storage_capacity": quantity(profile.disk_size),
        }
        if profile.cpu_guarantee is not None:
            resources["cpu_guarantee"] = min(float(profile.cpu_guarantee), profile.cpu_limit)
        if profile.mem_guarantee is not None:
            resources["mem_guarantee"] = min(profile.mem_guarantee, profile.mem_limit)
        return resources

    def check_options(self, options: dict, profile: Profile) -> None:
        """Refuse unknown choices and unlisted choices the admin did not allow (4xx)."""
        option_specs = self.profile_options.get(profile.slug, {})
        for name, spec in option_specs.items():
            label = spec.get("display_name", name)
            choices = spec.get("choices") or {}
            choice = options.get(name)
            unlisted = options.get(f"{name}--unlisted-choice")
            if choice == UNLISTED and not unlisted and (spec.get("unlisted_choice") or {}):
                field = spec["unlisted_choice"].get("display_name") or label
                raise PolicyError(400, f"Enter the {field}, or choose a listed {label}.")
            # a form's select says "unlisted_choice" beside the value typed (KubeSpawner
            # then uses that value); the value is checked below
            if choice and choice not in choices and not (choice == UNLISTED and unlisted):
                listed = ", ".join(f"'{c}'" for c in choices) or "none"
                raise PolicyError(
                    400,
                    f"There is no {label} choice {str(choice)[:64]!r}. Choose one of: {listed}.",
                )
            if not unlisted:
                continue
            if not (spec.get("unlisted_choice") or {}).get("enabled"):
                raise PolicyError(400, f"The profile {profile.slug!r} has no custom {label}.")
            if not self.unlisted_choice_allowed(str(unlisted), spec):
                raise PolicyError(
                    403,
                    f"The {label} {str(unlisted)[:128]!r} is not allowed on this hub. "
                    "Choose a listed one, or ask a hub admin to allow it.",
                )
        known = set(option_specs) | {f"{n}--unlisted-choice" for n in option_specs}
        known |= {"profile", "binder"}  # "binder": a launch from a repository
        unknown = sorted(k for k in options if k not in known and not k.startswith("_"))
        if unknown:
            self.log.warning("Ignoring unknown options for %s: %s", self._log_name, unknown[:10])

    def unlisted_choice_allowed(self, value: str, spec: dict) -> bool:
        """An unlisted choice must be allowlisted or match the admin's pattern."""
        own = (spec.get("unlisted_choice") or {}).get("validation_regex")
        if own and not re.fullmatch(own, value):
            return False
        if value in self.unlisted_choice_allowlist:
            return True
        return bool(self.unlisted_choice_pattern) and bool(
            re.fullmatch(self.unlisted_choice_pattern, value)
        )

    async def move_disk(self, old_name: str, new_name: str) -> None:
        """Renames are refused here: a claim cannot be renamed in Kubernetes, and one
        left under the old name would be taken by the next server of that name."""
        raise refusal(
            PolicyError(
                400,
                f"Servers cannot be renamed on this hub: {old_name or 'the default server'}'s "
                "disk is a Kubernetes volume claim named after it, and claims cannot be "
                "renamed. Create a new server with the name you want instead.",
            )
        )

    def options_from_form(self, formdata):
        """Read the form and refuse a profile or choice the user may not have (4xx)."""
        options = self._options_from_form(formdata)
        profile = self.resolve_profile(options.get("profile"))
        try:
            self.check_options(options, profile)
        except PolicyError as error:
            raise refusal(error) from None
        options["profile"] = profile.slug
        return options

    async def load_user_options(self):
        """Apply the profile the policy allows, then KubeSpawner's overrides, within bounds."""
        await self.prepare_start()
        try:
            self.check_options(self.user_options or {}, self.profile)
            self.user_options = {**(self.user_options or {}), "profile": self.profile.slug}
            await super().load_user_options()
        except PolicyError as error:
            raise refusal(error) from None
        except (ValueError, KeyError, StopIteration) as error:
            self.log.warning("Refusing options for %s: %s", self._log_name, error)
            raise refusal(PolicyError(400, "Those server options are not valid here.")) from None
        # the profile's own resources win over any kubespawner_override
        self.apply_profile(self.profile)
        for key, value in self._resources(self.profile).items():
            if key != "image":
                setattr(self, key, value)
        self._cap_guarantees()
        self._apply_launched_image()
        self._add_shared_volume()
        await self._find_existing_claim()

    def _cap_guarantees(self) -> None:
        """A profile that sets no guarantee gets KubeSpawner's (Zero to JupyterHub's
        ``singleuser.cpu.guarantee`` / ``memory.guarantee``, 1G by default), at most its
        limit: a request above the limit is a pod Kubernetes refuses."""
        if self.cpu_guarantee and self.cpu_limit and self.cpu_guarantee > self.cpu_limit:
            self.cpu_guarantee = self.cpu_limit
        if self.mem_guarantee and self.mem_limit and self.mem_guarantee > self.mem_limit:
            self.mem_guarantee = self.mem_limit

    def _apply_launched_image(self) -> None:
        """A launch from a repository (pangeohub.binder) runs the image BinderHub built."""
        from ..binder.binderhub import launched_image_option
        from ..binder.launcher import BinderLauncher

        prefix = hub_part(BinderLauncher, self).binderhub_image_prefix
        image = launched_image_option(self, prefix)
        if image:
            self.image = image

    def _add_shared_volume(self) -> None:
        """The shared data volume (``c.SharedData.kubernetes_volume``): readOnly unless
        the user is in one of its ``writer_groups``."""
        from ..lab.shared import SharedData

        volumes, mounts = hub_part(SharedData, self).kubernetes_mounts(self.user_groups)
        if volumes:
            self.volumes = _with_entries(self.volumes, volumes)
            self.volume_mounts = _with_entries(self.volume_mounts, mounts)

    def policy_environment(self) -> dict[str, str]:
        env = super().policy_environment()
        env["JUPYTER_IMAGE_SPEC"] = self.image
        return env

    # -- claims ---------------------------------------------------------------

    async def _claim(self, name: str) -> dict | None:
        try:
            claim = await self.api.read_namespaced_persistent_volume_claim(name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return claim.to_dict()

    async def _make_create_pvc_request(self, pvc, request_timeout):
        """KubeSpawner's; when it is not known yet whether this start makes the claim
        (:meth:`_find_existing_claim`), the answer to the create says: made (201) or
        there already (409)."""
        if getattr(self, "_claim_created_now", False) is not None:
            return await super()._make_create_pvc_request(pvc, request_timeout)
        try:
            await asyncio.wait_for(
                self.api.create_namespaced_persistent_volume_claim(
                    namespace=self.namespace, body=pvc
                ),
                request_timeout,
            )
        except TimeoutError:
            return False  # tried again; a claim made by this try then answers 409 (kept)
        except ApiException as e:
            if e.status != 409:  # e.g. a quota: KubeSpawner's own handling
                return await super()._make_create_pvc_request(pvc, request_timeout)
            self.log.info("PVC %s already exists, so did not create new pvc.", self.pvc_name)
            self._claim_created_now = False
            return True
        self._claim_created_now = True
        return True

    def _claim_is_ours(self, claim: dict) -> bool:
        meta = claim.get("metadata") or {}
        marks = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
        owner = marks.get("hub.jupyter.org/username")
        names = {self.user.name, self._expand_user_properties("{escaped_username}")}
        names.add(self._expand_user_properties("{safe_username}"))
        if owner not in names:
            return False
        server = marks.get("hub.jupyter.org/servername")
        return server is None or server in {
            self.name or "",
            self._expand_user_properties("{escaped_servername}"),
        }

    async def _find_existing_claim(self) -> None:
        """Use this server's claim under an older name scheme rather than orphan it.

        When no older name differs from the current one (e.g. a default server), nothing
        is read: KubeSpawner's create request says whether this start made the claim."""
        self._claim_created_now = False
        if not self.storage_pvc_ensure or self._pvc_exists:
            return
        older = []
        for template in self.legacy_pvc_name_templates:
            name = self._expand_user_properties(template, slug_scheme="escape")
            if name != self.pvc_name and name not in older:
                older.append(name)
        if not older:
            self._claim_created_now = None  # known once the claim is created
            return
        if await self._claim(self.pvc_name) is not None:
            self._pvc_exists = True
            return
        for name in older:
            claim = await self._claim(name)
            if claim is None:
                continue
            if not self._claim_is_ours(claim):
                self.log.warning(
                    "Claim %s exists but is not labelled for %s; not using it.",
                    name,
                    self._log_name,
                )
                continue
            self.log.info("Using %s's existing claim %s (older name scheme)", self._log_name, name)
            self.pvc_name = name
            self._pvc_exists = True
            return
        self._claim_created_now = True

    # -- start, with failures explained --------------------------------------

    # class-wide: reflectors (by kind) to reload at the next start, after the API was unreachable
    _stale_reflectors: set[str] = set()

    async def _start_reflector(self, kind, reflector_class, replace=False, **kwargs):
        """Replace a reflector that died or that is backing off after an API outage.

        Reflectors are shared by every start: one start's failure must never leave one half
        loaded. Their start runs shielded from this start's cancellation (KubeSpawner cancels
        the events reflector's start when the pods one fails), and a first load that another
        start began is waited for at most k8s_api_request_retry_timeout seconds.
        """
        key = self._get_reflector_key(kind)
        if not replace:
            await self._wait_first_load(kind, key)
        previous = self.__class__.reflectors.get(key)
        if previous is not None and not replace:
            loaded = previous.first_load_future
            failed = loaded.done() and (loaded.cancelled() or loaded.exception() is not None)
            dead = loaded.done() and (previous.watch_task is None or previous.watch_task.done())
            failing = getattr(previous, "failing", False)
            if failed or dead or failing or kind in PangeoKubeSpawner._stale_reflectors:
                self.log.info("Restarting the %s reflector", kind)
                replace = True
        reflector_class = pangeo_reflector(reflector_class)

        async def start():
            reflector = await super(PangeoKubeSpawner, self)._start_reflector(
                kind, reflector_class, replace=replace, **kwargs
            )
            PangeoKubeSpawner._stale_reflectors.discard(kind)
            return reflector

        task = asyncio.ensure_future(start())
        task.add_done_callback(retrieve)  # its failure is this start's, or nobody's
        return await asyncio.shield(task)

    async def _wait_first_load(self, kind: str, key) -> None:
        """Wait, bounded, for a first load of the shared reflector that is in progress."""
        deadline = time.monotonic() + self.k8s_api_request_retry_timeout
        while True:
            reflector = self.__class__.reflectors.get(key)
            if reflector is None or reflector.first_load_future.done():
                return  # nothing loading: _start_reflector decides whether to (re)start it
            loaded = reflector.first_load_future
            try:
                await asyncio.wait_for(asyncio.shield(loaded), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                # not loaded yet, with the API slow or unreachable: reload it at the next start
                PangeoKubeSpawner._stale_reflectors.add(kind)
                raise TimeoutError(
                    f"Could not list {kind} within {self.k8s_api_request_retry_timeout}s"
                ) from None
            except asyncio.CancelledError:
                if not loaded.cancelled():
                    raise  # this start was cancelled
            except Exception:
                pass  # that load failed: the reflector is replaced

    async def _start(self):
        # the whole start ends within start_timeout, as when JupyterHub runs it
        deadline = time.monotonic() + self.start_timeout
        main = asyncio.ensure_future(super()._start())
        watchdog = asyncio.ensure_future(self._watch_pod())
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
            await self._clean_failed_start()
            raise failure
        except SpawnException:
            raise
        except Exception as error:
            failure = self._explain(error)
            if failure is None:
                raise
            await self._clean_failed_start()
            raise failure from None
        finally:
            watchdog.cancel()
        return url

    async def _make_create_pod_request(self, pod, request_timeout):
        """KubeSpawner's, without logging the whole manifest, which holds the server's
        token (upstream: jupyterhub/kubespawner#639)."""
        try:
            self.log.info("Attempting to create pod %s", pod.metadata.name)
            await asyncio.wait_for(
                self.api.create_namespaced_pod(self.namespace, pod), request_timeout
            )
            return True
        except TimeoutError:
            return False
        except ApiException as e:
            if e.status != 409:
                self.log.error(
                    "Kubernetes refused pod %s: %s %s",
                    pod.metadata.name,
                    e.status,
                    _status_message(e),
                )
                raise
            self.log.info("Found existing pod %s, deleting it first", pod.metadata.name)
            await self.stop(True)
            return False

    @property
    def events(self):
        """KubeSpawner's: this pod's events since ``_last_event``, read from the events
        reflector's index by pod instead of a sort of every event in the namespace."""
        reflector = self.event_reflector
        resources = getattr(reflector, "resources", None)
        if not isinstance(resources, EventsByPod):
            return super().events
        events = []
        for event in resources.for_pod(self.pod_name):
            if self._last_event and event["metadata"]["uid"] == self._last_event:
                events = []  # only the events after the marker a start set
            else:
                events.append(event)
        return events

    def _pod(self) -> dict | None:
        reflector = self.__class__.reflectors.get(self._get_reflector_key("pods"))
        if reflector is None:
            return None
        return reflector.pods.get(f"{self.namespace}/{self.pod_name}")

    async def _watch_pod(self) -> None:
        """Fail early when the pod cannot pull its image or find room in the cluster, and
        say why it is not ready just before start_timeout ends the start."""
        pull_since = unscheduled_since = None
        give_up = time.monotonic() + max(self.start_timeout - 2, 1)
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            pull_failure, unscheduled = _pending(self._pod())
            pull_since = (pull_since or now) if pull_failure else None
            unscheduled_since = (unscheduled_since or now) if unscheduled else None
            if pull_failure and now - pull_since >= self.image_pull_timeout:
                raise self._image_failure(pull_failure)
            if unscheduled and now - unscheduled_since >= self.scheduling_timeout:
                raise self._scheduling_failure(unscheduled, now - unscheduled_since)
            if now >= give_up:
                if pull_failure:
                    raise self._image_failure(pull_failure)
                if unscheduled:
                    raise self._scheduling_failure(unscheduled, now - unscheduled_since)
                return  # let KubeSpawner's own timeout say it

    def _image_failure(self, waiting: dict) -> StartFailure:
        return StartFailure(
            f"Your server could not be started: its image {self.image!r} could not be "
            "downloaded. Choose another profile or image, or tell a hub admin.",
            reason="image",
            log_message=f"Image pull failing for {self._log_name} ({self.image}): "
            f"{waiting.get('reason')}: {waiting.get('message', '')}",
            status_code=502,  # the registry, upstream of the cluster, failed
        )

    def _scheduling_failure(self, why: str, waited: float) -> StartFailure:
        return StartFailure(
            "Your server could not be started: the cluster has no room for a server "
            f"of this size right now ({why}). Choose a smaller profile or try again later.",
            reason="unschedulable",
            log_message=f"Pod for {self._log_name} not scheduled in {waited:.0f}s: {why}",
            status_code=503,
        )

    def _explain(self, error: Exception) -> StartFailure | None:
        """Turn what went wrong talking to Kubernetes into a message a person can act on."""
        where = f"{self._log_name} in namespace {self.namespace}"
        if isinstance(error, ApiException):
            body = f"{error.reason or ''} {error.body or ''}"
            if error.status == 403 and "exceeded quota" in body:
                match = re.search(r"requested: ([\w.]+)=", body)
                what = _QUOTA_WHAT.get(match.group(1), match.group(1)) if match else "resources"
                return StartFailure(
                    f"Your server could not be started: this hub's quota of {what} in the "
                    "cluster is used up. Stop or delete a server you no longer need, or ask a "
                    "hub admin to raise the quota.",
                    reason="quota",
                    log_message=f"Quota exceeded starting {where}: {_status_message(error)}",
                    status_code=403,
                )
            if error.status in (401, 403):
                return StartFailure(
                    "Your server could not be started: the cluster refused the hub permission "
                    "to create it. This is a problem with the hub's set-up; "
                    "please tell a hub admin.",
                    reason="forbidden",
                    log_message=f"Kubernetes forbade starting {where}: {_status_message(error)}"
                    " (check the hub's RBAC Role)",
                    status_code=503,
                )
            return StartFailure(
                f"Your server could not be started: the cluster answered with an error "
                f"(HTTP {error.status}). Please try again; if this keeps happening, "
                "tell a hub admin.",
                reason="k8s-error",
                log_message=f"Kubernetes API error starting {where}: {error.status} "
                f"{_status_message(error)}",
                status_code=502,
            )
        timed_out = isinstance(error, TimeoutError | asyncio.TimeoutError)
        if isinstance(error, _CONNECTION_ERRORS) or (timed_out and "Could not" in str(error)):
            PangeoKubeSpawner._stale_reflectors.update(("pods", "events"))
            return StartFailure(
                "Your server could not be started because the hub cannot reach the Kubernetes "
                "cluster right now. Please try again in a minute; if this keeps happening, "
                "tell a hub admin.",
                reason="k8s-unreachable",
                log_message=f"Kubernetes API unreachable starting {where}: "
                f"{type(error).__name__}: {error}",
                status_code=503,
            )
        if timed_out:
            return StartFailure(
                f"Your server did not become ready within {self.start_timeout} seconds. "
                "Please try again; if this keeps happening, tell a hub admin.",
                reason="timeout",
                log_message=f"Pod for {where} not ready in {self.start_timeout}s: {error}",
                status_code=503,
            )
        return None

    async def _clean_failed_start(self) -> None:
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
        if getattr(self, "_claim_created_now", False) and self._pvc_exists:
            try:
                await asyncio.wait_for(
                    self.api.delete_namespaced_persistent_volume_claim(
                        self.pvc_name, self.namespace
                    ),
                    self.k8s_api_request_timeout,
                )
                self._pvc_exists = False
                self.log.info("Deleted claim %s made for a start that failed", self.pvc_name)
            except Exception as error:
                self.log.warning(
                    "Could not delete claim %s: %s", self.pvc_name, type(error).__name__
                )


def _with_entries(current, entries: list[dict]):
    """KubeSpawner's ``volumes``/``volume_mounts`` (a list, or a dict by name as Zero to
    JupyterHub gives them) with ``entries`` added, replacing any of the same name."""
    if isinstance(current, dict):
        return {**current, **{e["name"]: e for e in entries}}
    names = {e["name"] for e in entries}
    return [*(v for v in current if v.get("name") not in names), *entries]


def _pending(pod: dict | None) -> tuple[dict | None, str | None]:
    """Why a pod is stuck: (a container's image-pull failure, the scheduler's message)."""
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return None, None
    status = pod.get("status") or {}
    pull_failure = next(
        (
            waiting
            for cs in status.get("containerStatuses") or []
            if (waiting := (cs.get("state") or {}).get("waiting") or {}).get("reason")
            in _PULL_FAILURES
        ),
        None,
    )
    unscheduled = next(
        (
            (c.get("message") or "no node has room").rstrip(".")
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
        ),
        None,
    )
    return pull_failure, unscheduled


def _status_message(error: ApiException) -> str:
    """The message of a Kubernetes Status body, or the reason."""
    import json

    try:
        return json.loads(error.body or "{}").get("message") or str(error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)
