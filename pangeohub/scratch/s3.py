"""S3 (AWS, MinIO, Ceph): STS AssumeRole with a session policy limited to the user's prefix."""

from __future__ import annotations

import asyncio
import json
import re

from traitlets import Bool, Unicode

from .base import BackendUnavailable, ExpiringCredentials, Issued, ScratchConfigError
from .names import user_segment

OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
_ROLE_ARN = re.compile(r"^arn:[a-z-]+:iam::\d{12}:role/[\w+=,.@/-]+$")


def session_policy(bucket: str, key_prefix: str, partition: str = "aws") -> dict:
    """The STS session policy: objects under ``key_prefix`` and listing only inside it.

    ``key_prefix`` ends with ``/`` so that ``scratch/ann/`` never matches ``scratch/anna/``.
    """
    if not key_prefix.endswith("/"):
        raise ValueError("key_prefix must end with '/'")
    bucket_arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ListOwnPrefixOnly",
                "Effect": "Allow",
                "Action": "s3:ListBucket",
                "Resource": bucket_arn,
                "Condition": {"StringLike": {"s3:prefix": [f"{key_prefix}*"]}},
            },
            {
                "Sid": "ObjectsInOwnPrefix",
                "Effect": "Allow",
                "Action": OBJECT_ACTIONS,
                "Resource": f"{bucket_arn}/{key_prefix}*",
            },
        ],
    }


def lifecycle_rule(rule_id: str, prefix: str, days: int) -> dict:
    """The bucket lifecycle rule deleting scratch objects after ``days`` days."""
    return {
        "ID": rule_id,
        "Filter": {"Prefix": f"{prefix}/" if prefix else ""},
        "Status": "Enabled",
        "Expiration": {"Days": days},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }


def _same_rule(have: dict, want: dict) -> bool:
    have_prefix = have.get("Filter", {}).get("Prefix", have.get("Prefix", ""))
    return (
        have.get("Status") == want["Status"]
        and have.get("Expiration", {}).get("Days") == want["Expiration"]["Days"]
        and have_prefix == want["Filter"]["Prefix"]
    )


class S3ScratchBackend(ExpiringCredentials):
    """Scratch on S3 or an S3-compatible store (MinIO, Ceph) with STS AssumeRole."""

    name = "s3"
    scheme = "s3"

    role_arn = Unicode(
        "",
        help="""The IAM role the service assumes for each user (its permissions policy must
        allow the bucket's object actions; its trust policy must trust the service's identity).""",
    ).tag(config=True)
    region = Unicode("us-east-1", help="The bucket's region (also given to users).").tag(
        config=True
    )
    endpoint_url = Unicode(
        "", help="S3 endpoint URL for S3-compatible stores (MinIO, Ceph); empty for AWS."
    ).tag(config=True)
    sts_endpoint_url = Unicode(
        "", help="STS endpoint URL; empty means endpoint_url (MinIO/Ceph) or AWS's STS."
    ).tag(config=True)
    client_endpoint_url = Unicode(
        "", help="S3 endpoint URL users' servers use, if they reach the store by another address."
    ).tag(config=True)
    partition = Unicode("aws", help="ARN partition of the bucket (aws, aws-cn, aws-us-gov).").tag(
        config=True
    )
    session_name_prefix = Unicode(
        "pangeohub-", help="Prefix of each STS session name (shown in CloudTrail with the user)."
    ).tag(config=True)
    manage_lifecycle = Bool(
        True,
        help="""Apply the expiry lifecycle rule at start-up (needs s3:PutLifecycleConfiguration).
        If False, the rule is only verified and a missing rule is logged.""",
    ).tag(config=True)
    lifecycle_rule_id = Unicode(
        "pangeohub-scratch-expiry", help="ID of the lifecycle rule the service manages."
    ).tag(config=True)

    _sts = None
    _s3 = None

    def check_config(self) -> None:
        super().check_config()
        if not _ROLE_ARN.match(self.role_arn):
            raise ScratchConfigError(
                "The s3 scratch backend needs c.S3ScratchBackend.role_arn, the ARN of the role "
                "assumed for users (arn:aws:iam::<account>:role/<name>)."
            )

    def _client(self, service: str, endpoint: str):
        import boto3
        from botocore.config import Config

        config = Config(
            connect_timeout=5, read_timeout=15, retries={"max_attempts": 2, "mode": "standard"}
        )
        return boto3.session.Session().client(
            service, region_name=self.region, endpoint_url=endpoint or None, config=config
        )

    @property
    def sts(self):
        if self._sts is None:
            self._sts = self._client("sts", self.sts_endpoint_url or self.endpoint_url)
        return self._sts

    @property
    def s3(self):
        if self._s3 is None:
            self._s3 = self._client("s3", self.endpoint_url)
        return self._s3

    def session_name(self, user: str) -> str:
        name = f"{self.session_name_prefix}{user_segment(user)}"
        return re.sub(r"[^\w+=,.@-]", "-", name)[:64]

    async def credentials(self, user: str) -> Issued:
        return await self.cached(user, self._assume_role)

    async def _assume_role(self, user: str) -> Issued:
        policy = session_policy(self.bucket, self.key_prefix(user), self.partition)
        response = await self._call(
            "issue credentials",
            self.sts.assume_role,
            RoleArn=self.role_arn,
            RoleSessionName=self.session_name(user),
            Policy=json.dumps(policy, separators=(",", ":")),
            DurationSeconds=self.duration_seconds,
        )
        creds = response["Credentials"]
        expiration = creds["Expiration"]
        self.log.info("Issued S3 scratch credentials for %s until %s", user, expiration)
        return Issued(
            url=self.url(user),
            credentials={
                "Version": 1,
                "AccessKeyId": creds["AccessKeyId"],
                "SecretAccessKey": creds["SecretAccessKey"],
                "SessionToken": creds["SessionToken"],
                "Expiration": expiration.isoformat(),
            },
            expiration=expiration.timestamp(),
        )

    async def _call(self, what: str, method, *, missing_ok: str = "", **kwargs):
        """Run a blocking boto3 call in a thread; map failures to BackendUnavailable.

        A ClientError whose code is ``missing_ok`` returns None instead.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return await asyncio.to_thread(method, **kwargs)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "error")
            if missing_ok and code == missing_ok:
                return None
            self.log.error("S3/STS refused to %s: %s", what, code)
            raise BackendUnavailable(
                f"The scratch store refused to {what} ({code}); an admin should check the "
                "scratch service's role and bucket settings."
            ) from None
        except BotoCoreError as error:
            self.log.error("S3/STS unreachable to %s: %s", what, type(error).__name__)
            raise BackendUnavailable(
                f"The scratch store could not be reached to {what}; try again in a few minutes."
            ) from None

    async def ensure_expiry(self) -> None:
        """Apply (if managed) and verify the lifecycle rule deleting old scratch data."""
        want = lifecycle_rule(self.lifecycle_rule_id, self.prefix, self.expiry_days)
        rules = await self._lifecycle_rules()
        if any(r.get("ID") == want["ID"] and _same_rule(r, want) for r in rules):
            self.log.info(
                "Scratch lifecycle rule %s verified (%d days)", want["ID"], self.expiry_days
            )
            return
        if not self.manage_lifecycle:
            raise BackendUnavailable(
                f"Bucket {self.bucket} lacks lifecycle rule {want['ID']} (expire after "
                f"{self.expiry_days} days); add it or set c.S3ScratchBackend.manage_lifecycle."
            )
        others = [r for r in rules if r.get("ID") != want["ID"]]
        await self._call(
            "set the scratch lifecycle rule",
            self.s3.put_bucket_lifecycle_configuration,
            Bucket=self.bucket,
            LifecycleConfiguration={"Rules": [*others, want]},
        )
        rules = await self._lifecycle_rules()
        if not any(r.get("ID") == want["ID"] and _same_rule(r, want) for r in rules):
            raise BackendUnavailable("The scratch lifecycle rule did not persist on the bucket.")
        self.log.info("Scratch lifecycle rule %s applied (%d days)", want["ID"], self.expiry_days)

    async def _lifecycle_rules(self) -> list[dict]:
        response = await self._call(
            "read the lifecycle rules",
            self.s3.get_bucket_lifecycle_configuration,
            missing_ok="NoSuchLifecycleConfiguration",
            Bucket=self.bucket,
        )
        return (response or {}).get("Rules", [])

    def client_files(self, command: str, service_url: str = "") -> dict[str, str]:
        lines = ["[default]", f"credential_process = {command}", f"region = {self.region}"]
        return {"aws_config": "\n".join(lines) + "\n"}

    def client_environment(self, user: str, files: dict[str, str]) -> dict[str, str]:
        env = {
            "AWS_CONFIG_FILE": files["aws_config"],
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
        }
        endpoint = self.client_endpoint_url or self.endpoint_url
        if endpoint:
            env["AWS_ENDPOINT_URL_S3"] = endpoint
        return env
