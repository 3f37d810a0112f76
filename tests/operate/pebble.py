"""Debian's pebble: a real ACME server on loopback (domain validation switched off)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import requests

from pangeohub.hubconfig import free_port


def self_signed(directory: Path, name: str, hosts: list[str]) -> tuple[Path, Path]:
    """A certificate and key (PEM) for ``hosts``, signed by themselves."""
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    san = ",".join(f"IP:{h}" if h[0].isdigit() else f"DNS:{h}" for h in hosts)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
         "-subj", f"/CN={hosts[0]}", "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class Pebble:
    """``pebble`` with its own listener certificate, on free loopback ports."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.management_port = free_port(), free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self, timeout: float = 30) -> Pebble:
        self.listener_cert, key = self_signed(self.workdir, "pebble", ["127.0.0.1", "localhost"])
        config = self.workdir / "pebble.json"
        config.write_text(
            json.dumps(
                {
                    "pebble": {
                        "listenAddress": f"127.0.0.1:{self.port}",
                        "managementListenAddress": f"127.0.0.1:{self.management_port}",
                        "certificate": str(self.listener_cert),
                        "privateKey": str(key),
                        "httpPort": free_port(),
                        "tlsPort": free_port(),
                        "ocspResponderURL": "",
                        "externalAccountBindingRequired": False,
                    }
                }
            )
        )
        env = {
            **os.environ,
            "PEBBLE_VA_ALWAYS_VALID": "1",  # no domain to validate on loopback
            "PEBBLE_VA_NOSLEEP": "1",
            "PEBBLE_WFE_NONCEREJECT": "0",
        }
        with open(self.workdir / "pebble.log", "ab") as log:
            self.proc = subprocess.Popen(
                ["pebble", "-config", str(config)], env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                requests.get(self.directory, verify=str(self.listener_cert), timeout=2)
                return self
            except requests.RequestException:
                time.sleep(0.2)
        raise RuntimeError(f"pebble did not answer:\n{(self.workdir / 'pebble.log').read_text()}")

    def root(self) -> Path:
        """The root CA that signs the certificates pebble issues (new at every start)."""
        path = self.workdir / "issuer-root.pem"
        url = f"https://127.0.0.1:{self.management_port}/roots/0"
        path.write_text(requests.get(url, verify=str(self.listener_cert), timeout=10).text)
        return path

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
