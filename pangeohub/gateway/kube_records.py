"""What the hub reported about each running server, kept beside the server's pod.

On Kubernetes the gateway's pod has no lasting disk: :class:`ServerRecords` keeps each
record (the server's image, its workers' environment, the pod its clusters belong to)
in a Secret owned by the server's pod, so a restarted gateway reads them back and
Kubernetes deletes them with the pod. A mixin of
:class:`~.kubernetes.PangeoKubeBackend` (it uses the backend's API client and settings).
"""

from __future__ import annotations

import base64
import hashlib
import json

import aiohttp
from kubernetes_asyncio.client.rest import ApiException

RECORD_LABEL = "pangeohub.org/server-record"
_API_ERRORS = (ApiException, aiohttp.ClientError, OSError, TimeoutError)


class ServerRecords:
    """``server_recorded``/``server_forgotten`` of :class:`~.backend.PangeoBackendMixin`
    as Secrets; ``_pod_uid`` reads the server pod's uid once per start."""

    def _record_secret_name(self, username: str, server: str) -> str:
        digest = hashlib.sha256(f"{self.gateway_instance}\0{username}\0{server}".encode())
        return f"pangeohub-server-{digest.hexdigest()[:24]}"

    async def server_recorded(self, username: str, server: str, record: dict) -> None:
        """Keep the record in a Secret owned by the server's pod (once the pod exists):
        a restarted gateway reads it back (image, workers' environment, the pod its
        clusters belong to), and Kubernetes deletes it with the pod."""
        if not record.get("pod") or not self.owned_by_server:
            return
        try:
            if record.get("uid"):
                await self._keep_record(username, server, record)
            else:
                await self._pod_uid(username, server, record)
        except _API_ERRORS as error:
            self.log.info(
                "%s's server %s not recorded beside its pod yet (%s)",
                username,
                server,
                getattr(error, "status", type(error).__name__),
            )

    async def _pod_uid(self, username: str, server: str, record: dict) -> str | None:
        """The uid of the server's pod (None: no such pod yet), read once per start and
        kept in the record, which is then kept beside the pod."""
        if record.get("uid"):
            return record["uid"]
        namespace = record.get("namespace") or self.cluster_config_class(parent=self).namespace
        try:
            pod = await self.core_client.read_namespaced_pod(
                record["pod"], namespace, _request_timeout=self.k8s_api_timeout
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        record["uid"] = pod.metadata.uid
        self.server_records.save(username)
        try:
            await self._keep_record(username, server, record)
        except _API_ERRORS as error:
            self.log.warning(
                "Could not keep the record of %s's server %s beside its pod (%s): a "
                "restarted gateway will not know it until the server starts again",
                username,
                server,
                getattr(error, "status", type(error).__name__),
            )
        return record["uid"]

    async def _keep_record(self, username: str, server: str, record: dict) -> None:
        namespace = record.get("namespace") or self.cluster_config_class(parent=self).namespace
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self._record_secret_name(username, server),
                "labels": {
                    **self.common_labels,
                    RECORD_LABEL: "true",
                    "gateway.dask.org/instance": self.gateway_instance,
                },
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Pod", "name": record["pod"], "uid": record["uid"]}
                ],
            },
            "type": "Opaque",
            "data": {
                "record.json": base64.b64encode(
                    json.dumps({"user": username, "server": server, **record}).encode()
                ).decode()
            },
        }
        try:
            await self.core_client.create_namespaced_secret(
                namespace, body, _request_timeout=self.k8s_api_timeout
            )
        except ApiException as error:
            if error.status != 409:
                raise
            await self.core_client.replace_namespaced_secret(
                body["metadata"]["name"], namespace, body, _request_timeout=self.k8s_api_timeout
            )

    async def server_forgotten(self, username: str, server: str) -> None:
        namespace = self.cluster_config_class(parent=self).namespace
        try:
            await self.core_client.delete_namespaced_secret(
                self._record_secret_name(username, server),
                namespace,
                _request_timeout=self.k8s_api_timeout,
            )
        except _API_ERRORS as error:
            if getattr(error, "status", None) != 404:
                self.log.info("Could not delete the record of %s's server %s", username, server)

    async def _load_server_records(self) -> None:
        """What earlier gateways kept of running servers (their Secrets)."""
        if not self.owned_by_server:
            return
        namespace = self.cluster_config_class(parent=self).namespace
        selector = f"{RECORD_LABEL}=true,gateway.dask.org/instance={self.gateway_instance}"
        try:
            secrets = await self.core_client.list_namespaced_secret(
                namespace, label_selector=selector, _request_timeout=self.k8s_api_timeout
            )
        except _API_ERRORS as error:
            self.log.warning(
                "Could not read the servers' records (%s): clusters of servers started "
                "before this gateway are not tied to them until they restart",
                getattr(error, "status", type(error).__name__),
            )
            return
        loaded = 0
        for secret in secrets.items:
            try:
                record = json.loads(base64.b64decode((secret.data or {})["record.json"]))
                username, server = str(record.pop("user")), str(record.pop("server"))
            except (KeyError, ValueError, TypeError):
                continue
            self.server_records.adopt(username, server, record)
            loaded += 1
        self.log.info("Read the records of %d running servers", loaded)
