"""Production spawner: pangeohub's policies on KubeSpawner (Zero to JupyterHub).

One concern a module, each a mixin of KubeSpawner's:

- :mod:`.kube_profiles`: the profiles a person may choose, as ``profile_list``, and the
  options chosen in them, checked;
- :mod:`.kube_claims`: each server's own claim, one under an older name scheme included;
- :mod:`.kube_reflectors`: the shared reflectors, restarted when they failed;
- :mod:`.kube_watchdog` and :mod:`.kube_failures`: a start that fails early, says why in
  plain words, and leaves nothing behind.

This module puts them together and holds the one point a server's profile is applied
(:meth:`PangeoKubeSpawner.load_user_options`).
"""

from __future__ import annotations

import asyncio
import dataclasses

from kubernetes_asyncio.client.rest import ApiException
from kubespawner import KubeSpawner
from traitlets import Dict, List, Unicode, default, validate

from ..lab.picker import with_picker_templates
from ..numbers import FiniteFloat
from ..parts import hub_part
from ..policy import PolicyError
from .kube_claims import LegacyClaims
from .kube_failures import status_message
from .kube_profiles import ProfileChoices
from .kube_reflectors import SharedReflectors
from .kube_watchdog import StartWatchdog
from .mixin import PangeoSpawnerMixin, refusal

__all__ = ["PangeoKubeSpawner"]


class PangeoKubeSpawner(
    ProfileChoices,
    LegacyClaims,
    StartWatchdog,
    SharedReflectors,
    PangeoSpawnerMixin,
    KubeSpawner,
):
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
        or matches ``unlisted_choice_pattern``. A choice may set the image, not what the
        profile sets (its limits, guarantees, disk): the hub refuses to start otherwise.
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

    @default("additional_profile_form_template_paths")
    def _default_form_template_paths(self):
        return with_picker_templates([], self)

    @validate("additional_profile_form_template_paths")
    def _with_picker_templates(self, proposal):
        # the admin's paths first, then fancy-profiles' when the picker is active
        return with_picker_templates(proposal["value"], self)

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

    # -- the one point a profile is applied ---------------------------------

    async def load_user_options(self):
        """Apply the server's profile, once, where KubeSpawner applies profiles (at the
        start): the profile the policy allows, whose ``profile_list`` entry carries its
        image and resources (:mod:`.kube_profiles`), with the options chosen in it; then
        what pangeohub adds (guarantees within limits, a launched image, the shared
        volume), the environment hooks and the server's existing claim."""
        profile = self.resolve_profile((self.user_options or {}).get("profile"))
        try:
            self.check_options(self.user_options or {}, profile)
            self.profile = profile
            self.user_options = {**(self.user_options or {}), "profile": profile.slug}
            await super().load_user_options()
        except PolicyError as error:
            raise refusal(error) from None
        except (ValueError, KeyError, StopIteration) as error:
            self.log.warning("Refusing options for %s: %s", self._log_name, error)
            raise refusal(PolicyError(400, "Those server options are not valid here.")) from None
        self._cap_guarantees()
        self._apply_launched_image()
        self._add_shared_volume()
        await self.prepare_start()
        await self.find_existing_claim()

    def profile_as_run(self, profile):
        """The profile with the image the pod runs (a choice, a launch): the server's Dask
        workers run it too."""
        return dataclasses.replace(profile, image=self.image)

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

    # -- the pod ------------------------------------------------------------

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
                    status_message(e),
                )
                raise
            self.log.info("Found existing pod %s, deleting it first", pod.metadata.name)
            await self.stop(True)
            return False


def _with_entries(current, entries: list[dict]):
    """KubeSpawner's ``volumes``/``volume_mounts`` (a list, or a dict by name as Zero to
    JupyterHub gives them) with ``entries`` added, replacing any of the same name."""
    if isinstance(current, dict):
        return {**current, **{e["name"]: e for e in entries}}
    names = {e["name"] for e in entries}
    return [*(v for v in current if v.get("name") not in names), *entries]
