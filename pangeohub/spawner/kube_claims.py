"""Each server's claim on Kubernetes, including one made under an older name scheme.

Zero to JupyterHub before 4.0 named claims differently (``claim-{escaped_username}...``).
A server with no claim under the current name takes its claim under an older name rather
than orphan it, but only one labelled for its user (and server). Whether this start made
the claim is remembered, so a start that fails deletes a claim made for it alone.
"""

from __future__ import annotations

import asyncio

from kubernetes_asyncio.client.rest import ApiException


class LegacyClaims:
    """KubeSpawner mixin: a server's existing claim, under the current or an older name
    (setting: ``legacy_pvc_name_templates``)."""

    # whether this start made the server's claim; None: known once the claim is created
    _claim_created_now: bool | None = False

    async def find_existing_claim(self) -> None:
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
        if await self._read_claim(self.pvc_name) is not None:
            self._pvc_exists = True
            return
        for name in older:
            claim = await self._read_claim(name)
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

    async def delete_claim_made_now(self) -> None:
        """Delete the claim if this start made it (the start failed)."""
        if not (self._claim_created_now and self._pvc_exists):
            return
        try:
            await asyncio.wait_for(
                self.api.delete_namespaced_persistent_volume_claim(self.pvc_name, self.namespace),
                self.k8s_api_request_timeout,
            )
            self._pvc_exists = False
            self.log.info("Deleted claim %s made for a start that failed", self.pvc_name)
        except Exception as error:
            self.log.warning("Could not delete claim %s: %s", self.pvc_name, type(error).__name__)

    async def _read_claim(self, name: str) -> dict | None:
        try:
            claim = await self.api.read_namespaced_persistent_volume_claim(name, self.namespace)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        return claim.to_dict()

    async def _make_create_pvc_request(self, pvc, request_timeout):
        """KubeSpawner's; when it is not known yet whether this start makes the claim
        (:meth:`find_existing_claim`), the answer to the create says: made (201) or
        there already (409)."""
        if self._claim_created_now is not None:
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
