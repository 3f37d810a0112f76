"""HTTPS in front of the hub: Debian's caddy, configured from one setting.

``c.HTTPS.domain = "hub.example.org"`` is enough: caddy gets a certificate for it from an
ACME authority (Let's Encrypt by default, caddy's own choice), renews it before it expires,
and redirects plain HTTP to HTTPS. With ``certificate`` and ``key`` caddy serves the
admin's own instead. caddy forwards to configurable-http-proxy on loopback; the hub and
the proxy's API never leave loopback. ``pangeohub-admin https`` writes the Caddyfile from
the hub's configuration and runs caddy (the ``pangeohub-https`` unit's command).

On Kubernetes HTTPS is the chart's (``proxy.https``); this part is for one machine.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from pathlib import Path

from traitlets import Integer, Unicode, default
from traitlets.config import Config, Configurable

from ..state import StateDirectory

_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class HTTPS(Configurable):
    """HTTPS for the one-machine hub (``c.HTTPS``), served by caddy."""

    domain = Unicode(
        "",
        help="""The hub's public domain name (``hub.example.org``). Set, the
        ``pangeohub-https`` service (caddy) serves the hub over HTTPS on it, with a
        certificate from ``acme_ca`` (or ``certificate``/``key``), and redirects HTTP to
        HTTPS. Empty: no HTTPS (the hub serves plain HTTP on loopback).""",
    ).tag(config=True)

    email = Unicode(
        "",
        help="""Contact address given to the ACME authority (expiry warnings). Optional.""",
    ).tag(config=True)

    acme_ca = Unicode(
        "",
        help="""The ACME directory URL certificates come from. Empty: caddy's default
        (Let's Encrypt).""",
    ).tag(config=True)

    acme_ca_root = Unicode(
        "",
        help="""A PEM file of the CA that signs the ACME server's own HTTPS certificate, when
        it is not a public one (a private ACME server).""",
    ).tag(config=True)

    certificate = Unicode(
        "",
        help="""The admin's own certificate (PEM, full chain) for ``domain``. With ``key``,
        caddy serves it and asks no ACME authority; renewing it is the admin's job (restart
        ``pangeohub-https`` after replacing the files).""",
    ).tag(config=True)

    key = Unicode("", help="The private key (PEM) of ``certificate``.").tag(config=True)

    http_port = Integer(80, help="Where caddy listens for plain HTTP (redirected).").tag(
        config=True
    )
    https_port = Integer(443, help="Where caddy serves HTTPS.").tag(config=True)

    storage = Unicode(
        help="""Where caddy keeps its ACME account, certificates and keys (default:
        <state dir>/caddy, root only). Back it up with the state directory.""",
    ).tag(config=True)

    caddy = Unicode(
        "caddy", help="The caddy command (Debian's package installs /usr/bin/caddy)."
    ).tag(config=True)

    @default("storage")
    def _default_storage(self):
        return str(StateDirectory.from_env().path / "caddy")

    @property
    def enabled(self) -> bool:
        return bool(self.domain)

    def problem(self) -> str | None:
        """Why these settings cannot work, or None."""
        if not self.enabled:
            return None
        if not _DOMAIN.match(self.domain):
            return (
                f"c.HTTPS.domain {self.domain!r} is not a domain name: give the name people "
                "type (hub.example.org), without scheme, port or path."
            )
        if bool(self.certificate) != bool(self.key):
            return "c.HTTPS.certificate and c.HTTPS.key go together: set both, or neither."
        for name in ("certificate", "key", "acme_ca_root"):
            path = getattr(self, name)
            if path and not os.path.isabs(path):
                return f"c.HTTPS.{name} must be an absolute path, not {path!r}."
        return None

    def caddyfile(self, upstream: str) -> str:
        """The Caddyfile serving ``domain`` from ``upstream`` (the proxy's host:port)."""
        globals_ = [
            "admin off",
            f"storage file_system {_quote(self.storage)}",
            f"http_port {self.http_port}",
            f"https_port {self.https_port}",
        ]
        if self.email:
            globals_.append(f"email {_quote(self.email)}")
        if self.acme_ca:
            globals_.append(f"acme_ca {_quote(self.acme_ca)}")
        if self.acme_ca_root:
            globals_.append(f"acme_ca_root {_quote(self.acme_ca_root)}")
        site = []
        if self.certificate:
            site.append(f"tls {_quote(self.certificate)} {_quote(self.key)}")
        site.append(f"reverse_proxy {upstream}")
        return (
            "# Written by `pangeohub-admin https` from the hub's configuration (c.HTTPS);\n"
            "# edit that, not this file.\n"
            "{\n" + "".join(f"\t{line}\n" for line in globals_) + "}\n\n"
            f"{self.domain} {{\n" + "".join(f"\t{line}\n" for line in site) + "}\n"
        )

    def write_caddyfile(self, upstream: str) -> Path:
        storage = Path(self.storage)
        storage.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = storage / "Caddyfile"
        path.write_text(self.caddyfile(upstream))
        return path

    def command(self, caddyfile: Path) -> list[str]:
        caddy = shutil.which(self.caddy) or self.caddy
        return [caddy, "run", "--adapter", "caddyfile", "--config", str(caddyfile)]


def _quote(value: str) -> str:
    if re.search(r'[\s"{}]', value):
        raise ValueError(f"{value!r}: spaces, quotes and braces are not allowed here")
    return value


def proxy_upstream(config: Config) -> str:
    """The public side of configurable-http-proxy, which caddy forwards to."""
    ip = config.JupyterHub.get("ip", "") or "127.0.0.1"
    return f"{ip}:{config.JupyterHub.get('port', 8000)}"


def check_https(config: Config) -> None:
    """Refuse HTTPS settings that cannot work (start-up check of ``pangeohub.configure``)."""
    https = HTTPS(config=config)
    if not https.enabled:
        return
    problem = https.problem()
    if problem:
        raise ValueError(problem)
    spawner = str(config.JupyterHub.get("spawner_class", ""))
    if "kube" in spawner.lower():
        raise ValueError(
            "c.HTTPS is for one machine; on Kubernetes set proxy.https in Zero to "
            "JupyterHub's values instead."
        )
    ip = config.JupyterHub.get("ip", "") or "127.0.0.1"
    if not ipaddress.ip_address(ip).is_loopback:
        raise ValueError(
            f"With c.HTTPS.domain set, caddy is the hub's only public door: the proxy must "
            f"listen on loopback, not {ip} (unset PANGEOHUB_IP or c.JupyterHub.ip)."
        )
