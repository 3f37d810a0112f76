"""Google Cloud Storage: downscoped tokens (Credential Access Boundary) per user prefix.

The service's own credentials (a service account) are exchanged at Google's STS for an
access token that can only reach ``gs://<bucket>/<prefix>/<user>/``. Users' servers get
an ``external_account`` credential file (no secret) whose executable hands the server's
JupyterHub token to this service's token endpoint, so the standard Google clients renew
downscoped tokens by themselves.
"""

from __future__ import annotations

import asyncio
import json
import time

from traitlets import Unicode

from .base import BackendUnavailable, ExpiringCredentials, Issued, ScratchConfigError

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"


def access_boundary(bucket: str, key_prefix: str, role: str = "roles/storage.objectAdmin"):
    """The Credential Access Boundary limiting a token to objects under ``key_prefix``."""
    from google.auth import downscoped

    condition = downscoped.AvailabilityCondition(
        expression=(
            f"resource.name.startsWith('projects/_/buckets/{bucket}/objects/{key_prefix}') || "
            f"api.getAttribute('storage.googleapis.com/objectListPrefix', '')"
            f".startsWith('{key_prefix}')"
        ),
        title="own scratch prefix",
        description="Objects under, and listings inside, one user's scratch prefix.",
    )
    rule = downscoped.AccessBoundaryRule(
        available_resource=f"//storage.googleapis.com/projects/_/buckets/{bucket}",
        available_permissions=[f"inRole:{role}"],
        availability_condition=condition,
    )
    return downscoped.CredentialAccessBoundary(rules=[rule])


class GCSScratchBackend(ExpiringCredentials):
    """Scratch on Google Cloud Storage with downscoped access tokens."""

    name = "gcs"
    scheme = "gs"

    service_account_file = Unicode(
        "",
        help="""Key file of the service account the service downscopes from; empty uses
        Application Default Credentials (e.g. GKE Workload Identity).""",
    ).tag(config=True)
    project = Unicode("", help="Google Cloud project given to users' clients.").tag(config=True)
    role = Unicode(
        "roles/storage.objectAdmin", help="Role the downscoped token keeps inside the prefix."
    ).tag(config=True)
    sts_token_url = Unicode(
        "https://sts.googleapis.com/v1/token", help="Google STS token-exchange endpoint."
    ).tag(config=True)
    storage_api_url = Unicode(
        "https://storage.googleapis.com/storage/v1", help="Cloud Storage JSON API root."
    ).tag(config=True)

    _source = None

    def check_config(self) -> None:
        super().check_config()
        try:
            import google.auth  # noqa: F401
        except ImportError:
            raise ScratchConfigError(
                "The gcs scratch backend needs google-auth: pip install google-auth."
            ) from None
        if self.renew_before_seconds >= 3000:
            raise ScratchConfigError("c.GCSScratchBackend.renew_before_seconds must be < 3000.")

    def source_credentials(self):
        if self._source is None:
            import google.auth
            from google.oauth2 import service_account

            if self.service_account_file:
                self._source = service_account.Credentials.from_service_account_file(
                    self.service_account_file, scopes=[CLOUD_PLATFORM]
                )
            else:
                self._source, _ = google.auth.default(scopes=[CLOUD_PLATFORM])
        return self._source

    def _request(self):
        import google.auth.transport.requests

        return google.auth.transport.requests.Request()

    def _downscope(self, user: str) -> Issued:
        from google.auth import exceptions
        from google.oauth2 import sts

        try:
            source = self.source_credentials()
            request = self._request()
            if not source.valid:
                source.refresh(request)
            boundary = access_boundary(self.bucket, self.key_prefix(user), self.role)
            response = sts.Client(self.sts_token_url).exchange_token(
                request=request,
                grant_type=TOKEN_EXCHANGE,
                subject_token=source.token,
                subject_token_type=ACCESS_TOKEN,
                requested_token_type=ACCESS_TOKEN,
                additional_options=boundary.to_json(),
            )
        except exceptions.GoogleAuthError as error:
            self.log.error("Google STS refused to downscope for %s: %s", user, type(error).__name__)
            raise BackendUnavailable(
                "Google's token service could not issue scratch credentials; try again later."
            ) from None
        except OSError as error:
            self.log.error("Google STS unreachable: %s", type(error).__name__)
            raise BackendUnavailable("Google's token service could not be reached.") from None
        lifetime = int(response.get("expires_in") or 3600)
        expiration = self.now() + lifetime
        return Issued(
            url=self.url(user),
            credentials={"access_token": response["access_token"], "expires_in": lifetime},
            expiration=expiration,
        )

    async def credentials(self, user: str) -> Issued:
        async def issue(name: str) -> Issued:
            return await asyncio.to_thread(self._downscope, name)

        return await self.cached(user, issue)

    def _lifecycle_rule(self) -> dict:
        return {
            "action": {"type": "Delete"},
            "condition": {"age": self.expiry_days, "matchesPrefix": [f"{self.prefix}/"]},
        }

    def _ensure_lifecycle(self) -> None:
        from google.auth.transport.requests import AuthorizedSession

        session = AuthorizedSession(self.source_credentials())
        url = f"{self.storage_api_url}/b/{self.bucket}"
        want = self._lifecycle_rule()
        response = session.get(url, params={"fields": "lifecycle"}, timeout=15)
        response.raise_for_status()
        rules = response.json().get("lifecycle", {}).get("rule", [])
        if want in rules:
            return
        mine = [
            r for r in rules if r.get("condition", {}).get("matchesPrefix") != [f"{self.prefix}/"]
        ]
        body = {"lifecycle": {"rule": [*mine, want]}}
        response = session.patch(
            url, data=json.dumps(body), timeout=15, headers={"Content-Type": "application/json"}
        )
        response.raise_for_status()
        if want not in response.json().get("lifecycle", {}).get("rule", []):
            raise BackendUnavailable("The scratch lifecycle rule did not persist on the bucket.")

    async def ensure_expiry(self) -> None:
        try:
            await asyncio.to_thread(self._ensure_lifecycle)
        except BackendUnavailable:
            raise
        except Exception as error:
            self.log.error("Cannot set the GCS lifecycle rule: %s", type(error).__name__)
            raise BackendUnavailable("The bucket's lifecycle rule could not be set.") from None
        self.log.info("Scratch lifecycle rule verified (%d days)", self.expiry_days)

    def client_files(self, command: str, service_url: str = "") -> dict[str, str]:
        config = {
            "type": "external_account",
            "audience": f"{service_url}gcs/token",
            "subject_token_type": JWT,
            "token_url": f"{service_url}gcs/token",
            "credential_source": {
                "executable": {"command": f"{command} --gcs-subject-token", "timeout_millis": 30000}
            },
        }
        return {"gcs_credentials.json": json.dumps(config, indent=2) + "\n"}

    def client_environment(self, user: str, files: dict[str, str]) -> dict[str, str]:
        env = {
            "GOOGLE_APPLICATION_CREDENTIALS": files["gcs_credentials.json"],
            "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES": "1",
        }
        if self.project:
            env["GOOGLE_CLOUD_PROJECT"] = self.project
        return env


def subject_token_response(token: str) -> dict:
    """What the executable prints for google-auth: the JupyterHub token as subject."""
    return {
        "version": 1,
        "success": True,
        "token_type": JWT,
        "id_token": token,
        "expiration_time": int(time.time()) + 300,
    }
