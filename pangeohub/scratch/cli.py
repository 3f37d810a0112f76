"""``pangeohub-scratch-credentials``: the ``credential_process`` behind ``$PANGEO_SCRATCH``.

Run by boto3/s3fs (through ``AWS_CONFIG_FILE``) or by google-auth (through
``GOOGLE_APPLICATION_CREDENTIALS``): it asks the scratch service, with the server's
``$JUPYTERHUB_API_TOKEN``, for credentials reaching only the user's own prefix and
prints them in the format the client expects. Errors go to stderr, never secrets.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

from .gcs import subject_token_response

URL_ENV = "PANGEO_SCRATCH_SERVICE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"


class Failure(Exception):
    """A failure to report on stderr (one actionable sentence)."""


def fetch_credentials(url: str, token: str, timeout: float = 15) -> dict:
    """The service's answer for this token (one request, bounded by ``timeout``)."""
    if not url:
        raise Failure(f"${URL_ENV} is not set: this server was not started with scratch.")
    if not token:
        raise Failure(f"${TOKEN_ENV} is not set: run this inside your Jupyter server.")
    request = urllib.request.Request(
        url.rstrip("/") + "/credentials", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        try:
            message = json.load(error).get("message", "")
        except ValueError:
            message = ""
        raise Failure(f"Scratch credentials refused ({error.code}): {message}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise Failure(f"The scratch service at {url} is unreachable ({reason}).") from None


def credential_process_output(answer: dict) -> dict:
    """The JSON an AWS ``credential_process`` prints."""
    if answer.get("backend") != "s3":
        raise Failure(f"This hub's scratch is {answer.get('backend')!r}, not S3.")
    creds = answer["credentials"]
    keys = ("Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")
    return {key: creds[key] for key in keys}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pangeohub-scratch-credentials", description=__doc__)
    parser.add_argument("--url", default=os.environ.get(URL_ENV, ""), help="scratch service URL")
    parser.add_argument(
        "--timeout", type=float, default=15, help="seconds to wait for the scratch service"
    )
    parser.add_argument(
        "--gcs-subject-token",
        action="store_true",
        help="print the google-auth executable response (for external_account credentials)",
    )
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV, "")
    if args.gcs_subject_token:
        if not token:
            out = {"version": 1, "success": False, "code": "401", "message": f"${TOKEN_ENV} unset"}
        else:
            out = subject_token_response(token)
        print(json.dumps(out))
        return 0 if token else 1
    try:
        out = credential_process_output(fetch_credentials(args.url, token, args.timeout))
    except Failure as error:
        print(f"pangeohub-scratch-credentials: {error}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
