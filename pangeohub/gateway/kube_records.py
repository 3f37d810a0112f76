"""What the hub reported about each running server, kept in the clusters' namespace.

On Kubernetes the gateway's pod has no lasting disk: :class:`ServerRecords` keeps each
record (the server's image, its workers' environment, the pod its clusters belong to)
in a Secret in the clusters' namespace, so a restarted gateway reads them back. Where the
server's pod shares that namespace, the Secret is owned by the pod and Kubernetes
deletes it with the pod. Otherwise (the clusters in a namespace of their own: owners
must share the dependent's namespace) the record stands for the server there: its
clusters are owned by it, and the gateway deletes it once the server's pod is gone or
replaced (checked when it starts and every ``orphan_check_period`` seconds, with "get"
on that pod only), which deletes those clusters too. A mixin of
:class:`~.kubernetes.PangeoKubeBackend` (it uses the backend's API client and settings).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json

import aiohttp
from kubernetes_asyncio.client.rest import ApiException

from .rounds import Rounds

RECORD_LABEL = "pangeohub.org/server-record"
_API_ERRORS = (ApiException, aiohttp.ClientError, OSError, TimeoutError)


class ServerRecords:
    """``server_recorded``/``server_forgotten`` of :class:`~.backend.PangeoBackendMixin`
    as Secrets; ``_pod_uid`` reads the server pod's uid once per start; the records of
    servers whose pod is gone are deleted (:meth:`_forget_gone_servers`)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._server_pod_checks = Rounds(
            self._forget_gone_servers, self.orphan_check_period, self.log, "Checking servers' pods"
        )

    def _record_secret_name(self, username: str, server: str) -> str:
        digest = hashlib.sha256(f"{self.gateway_instance}\0{username}\0{server}".encode())
        return f"pangeohub-server-{digest.hexdigest()[:24]}"

    async def server_recorded(self, username: str, server: str, record: dict) -> None:
        """Keep the record in a Secret in the clusters' namespace (once the pod exists):
        a restarted gateway reads it back (image, workers' environment, the pod its
        clusters belong to); it goes with the pod (its owner, or the gateway's check)."""
        if not record.get("pod") or not self.owned_by_server:
            return
        try:
            if record.get("uid"):
                await self._keep_record(username, server, record)
            else:
                await self._pod_uid(username, server, record)
        except _API_ERRORS as error:
            self.log.info(
                "%s's server %s not recorded in the clusters' namespace yet (%s)",
                username,
                server,
                getattr(error, "status", type(error).__name__),
            )

    async def _pod_uid(self, username: str, server: str, record: dict) -> str | None:
        """The uid of the server's pod (None: no such pod yet), read once per start and
        kept in the record, which is then kept as a Secret."""
        if record.get("uid"):
            return record["uid"]
        namespace = record.get("namespace") or self.clusters_namespace
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
                "Could not keep the record of %s's server %s (%s): a "
                "restarted gateway will not know it until the server starts again",
                username,
                server,
                getattr(error, "status", type(error).__name__),
            )
        return record["uid"]

    async def _keep_record(self, username: str, server: str, record: dict) -> str:
        """Create or replace the record's Secret; the Secret's uid. A record left by an
        earlier pod of the server is deleted first (its clusters with it)."""
        namespace = self.clusters_namespace
        name = self._record_secret_name(username, server)
        metadata = {
            "name": name,
            "labels": {
                **self.common_labels,
                RECORD_LABEL: "true",
                "gateway.dask.org/instance": self.gateway_instance,
            },
        }
        if (record.get("namespace") or namespace) == namespace:  # owners share it
            metadata["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Pod", "name": record["pod"], "uid": record["uid"]}
            ]
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "Opaque",
            "data": {
                "record.json": base64.b64encode(
                    json.dumps({"user": username, "server": server, **record}).encode()
                ).decode()
            },
        }
        timeout = self.k8s_api_timeout
        try:
            made = await self.core_client.create_namespaced_secret(
                namespace, body, _request_timeout=timeout
            )
        except ApiException as error:
            if error.status != 409:
                raise
            old = await self.core_client.read_namespaced_secret(
                name, namespace, _request_timeout=timeout
            )
            if _record_of(old).get("uid") == record["uid"]:
                made = await self.core_client.replace_namespaced_secret(
                    name, namespace, body, _request_timeout=timeout
                )
            else:  # an earlier pod's: its clusters are not this pod's
                await self.core_client.delete_namespaced_secret(
                    name, namespace, _request_timeout=timeout
                )
                made = await self.core_client.create_namespaced_secret(
                    namespace, body, _request_timeout=timeout
                )
        return made.metadata.uid

    async def _record_owner(self, username: str, server: str, record: dict) -> dict | None:
        """The ownerReference to the server's record, as it is in the API now (kept again
        if it is not there, or is an earlier pod's): a reference to a Secret that is gone
        would have the garbage collector delete the cluster at once."""
        name = self._record_secret_name(username, server)
        try:
            try:
                secret = await self.core_client.read_namespaced_secret(
                    name, self.clusters_namespace, _request_timeout=self.k8s_api_timeout
                )
            except ApiException as error:
                if error.status != 404:
                    raise
                uid = None
            else:
                uid = (
                    secret.metadata.uid if _record_of(secret).get("uid") == record["uid"] else None
                )
            if uid is None:
                uid = await self._keep_record(username, server, record)
        except _API_ERRORS as error:
            self.log.warning(
                "Cannot keep the record of %s's server %s (%s): the cluster is not tied to it",
                username,
                server,
                getattr(error, "status", type(error).__name__),
            )
            return None
        return {"apiVersion": "v1", "kind": "Secret", "name": name, "uid": uid}

    async def server_forgotten(self, username: str, server: str) -> None:
        try:
            await self.core_client.delete_namespaced_secret(
                self._record_secret_name(username, server),
                self.clusters_namespace,
                _request_timeout=self.k8s_api_timeout,
            )
        except _API_ERRORS as error:
            if getattr(error, "status", None) != 404:
                self.log.info("Could not delete the record of %s's server %s", username, server)

    async def _load_server_records(self) -> None:
        """What earlier gateways kept of running servers (their Secrets); the records of
        servers whose pod went while no gateway ran are deleted."""
        if not self.owned_by_server:
            return
        selector = f"{RECORD_LABEL}=true,gateway.dask.org/instance={self.gateway_instance}"
        try:
            secrets = await self.core_client.list_namespaced_secret(
                self.clusters_namespace,
                label_selector=selector,
                _request_timeout=self.k8s_api_timeout,
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
                record = _record_of(secret)
                username, server = str(record.pop("user")), str(record.pop("server"))
            except (KeyError, ValueError, TypeError):
                continue
            self.server_records.adopt(username, server, record)
            loaded += 1
        self.log.info("Read the records of %d running servers", loaded)
        await self._forget_gone_servers()

    # --- servers whose pod is gone --------------------------------------------

    def _start_server_pod_checks(self) -> None:
        if self.owned_by_server and self.orphan_check_period > 0:
            self._server_pod_checks.start()

    async def _forget_gone_servers(self) -> list[tuple[str, str]]:
        """Delete the records (and with them their clusters) of servers whose pod is
        gone or replaced; the (user, server) pairs forgotten."""
        gone = []
        for username, servers in list(self.server_records.by_user.items()):
            for server, record in list(servers.items()):
                if not (record.get("pod") and record.get("uid")):
                    continue
                namespace = record.get("namespace") or self.clusters_namespace
                try:
                    pod = await self.core_client.read_namespaced_pod(
                        record["pod"], namespace, _request_timeout=self.k8s_api_timeout
                    )
                except _API_ERRORS as error:
                    if getattr(error, "status", None) != 404:
                        self.log.info(
                            "Cannot read %s's server pod %s/%s (%s)",
                            username,
                            namespace,
                            record["pod"],
                            getattr(error, "status", type(error).__name__),
                        )
                        continue
                    pod = None
                if pod is not None and pod.metadata.uid == record["uid"]:
                    continue
                if self.server_records.get(username, server) is not record:
                    continue  # reported again meanwhile
                self.log.info(
                    "%s's server %s is gone (pod %s/%s): deleting its record and clusters",
                    username,
                    server or "/",
                    namespace,
                    record["pod"],
                )
                self.server_records.pop(username, server)
                await self.server_forgotten(username, server)
                gone.append((username, server))
        return gone


def _record_of(secret) -> dict:
    """The record a Secret holds (empty if it holds none)."""
    with contextlib.suppress(KeyError, ValueError, TypeError, AttributeError):
        return json.loads(base64.b64decode((secret.data or {})["record.json"]))
    return {}
