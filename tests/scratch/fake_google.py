"""A fake of the Google endpoints the gcs scratch backend calls, on loopback.

Speaks the real protocols so the real google-auth client is what is tested:
- ``POST /token``: OAuth 2.0 JWT-bearer grant for a service account (signature checked);
- ``POST /v1/token``: STS token exchange with a Credential Access Boundary (recorded);
- ``GET|PATCH /storage/v1/b/<bucket>``: the bucket's lifecycle configuration.
"""

from __future__ import annotations

import itertools
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
# google-auth signs service-account assertions for Google's token endpoint wherever it posts
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class FakeGoogle:
    """Start with ``start()``, stop with ``stop()``; ``url`` is its base URL."""

    def __init__(self):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.source_tokens: set[str] = set()
        self.downscoped: dict[str, dict] = {}  # token -> access boundary it was issued for
        self.buckets: dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def service_account_info(self) -> dict:
        return {
            "type": "service_account",
            "project_id": "pangeo-test",
            "private_key_id": "key-1",
            "private_key": self.private_pem,
            "client_email": "scratch-broker@pangeo-test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": f"{self.url}/token",
        }

    def start(self) -> FakeGoogle:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _form(self) -> dict[str, str]:
                length = int(self.headers.get("Content-Length", 0))
                return dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))

            def _bearer_ok(self) -> bool:
                auth = self.headers.get("Authorization", "")
                return auth.startswith("Bearer ") and auth[7:] in fake.source_tokens

            def do_POST(self):
                form = self._form()
                if self.path == "/token":
                    return self._service_account_grant(form)
                if self.path == "/v1/token":
                    return self._token_exchange(form)
                self._send(404, {"error": "not_found"})

            def _service_account_grant(self, form):
                from google.auth import jwt

                if form.get("grant_type") != JWT_BEARER:
                    return self._send(400, {"error": "unsupported_grant_type"})
                try:
                    jwt.decode(
                        form["assertion"], certs=fake.public_pem, audience=GOOGLE_TOKEN_AUDIENCE
                    )
                except Exception:
                    return self._send(400, {"error": "invalid_grant"})
                token = f"source-{next(fake._ids)}"
                fake.source_tokens.add(token)
                self._send(200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

            def _token_exchange(self, form):
                if form.get("grant_type") != TOKEN_EXCHANGE:
                    return self._send(400, {"error": "unsupported_grant_type"})
                if form.get("subject_token") not in fake.source_tokens:
                    return self._send(400, {"error": "invalid_grant"})
                options = json.loads(urllib.parse.unquote(form.get("options", "%7B%7D")))
                boundary = options.get("accessBoundary")
                if not boundary:
                    return self._send(400, {"error": "invalid_request"})
                token = f"downscoped-{next(fake._ids)}"
                fake.downscoped[token] = boundary
                self._send(
                    200,
                    {
                        "access_token": token,
                        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                        "token_type": "Bearer",
                        "expires_in": 3600,
                    },
                )

            def _bucket(self) -> str | None:
                path = urllib.parse.urlparse(self.path).path
                prefix = "/storage/v1/b/"
                return path[len(prefix) :] if path.startswith(prefix) else None

            def do_GET(self):
                bucket = self._bucket()
                if bucket is None or not self._bearer_ok():
                    return self._send(401 if bucket else 404, {"error": "denied"})
                self._send(200, fake.buckets.setdefault(bucket, {}))

            def do_PATCH(self):
                bucket = self._bucket()
                if bucket is None or not self._bearer_ok():
                    return self._send(401 if bucket else 404, {"error": "denied"})
                length = int(self.headers.get("Content-Length", 0))
                patch = json.loads(self.rfile.read(length))
                fake.buckets.setdefault(bucket, {}).update(patch)
                self._send(200, fake.buckets[bucket])

        return Handler
