"""uv the way this machine reaches packages: its trust store, proxy and index settings.

uv reads its own settings (``uv.toml``, ``UV_*`` variables) but not pip's, and by default
trusts only its bundled Mozilla roots: behind a campus or company proxy with its own
certificate authority, pip works (it uses the system's certificates) while uv refuses the
index ("invalid peer certificate: UnknownIssuer"). Builds therefore run uv with the
system's trust store, the machine's proxy variables, and, when uv has no index settings
of its own, pip's (``pip.conf``, ``PIP_*``), translated to uv's.
"""

from __future__ import annotations

import configparser
import os
import shutil
from pathlib import Path

# How the machine reaches the network: what every build step keeps from the hub's
# environment (git and a repository's postBuild too; a build otherwise starts clean).
NETWORK_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
)
# What a build's uv keeps from the hub's environment, besides its UV_* settings.
PASSED_VARIABLES = (*NETWORK_VARIABLES, "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS")
# uv's settings of where packages come from (the Binder builder's own index replaces them).
INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL")


def uv_executable() -> str:
    """The uv installed with pangeohub (its ``uv`` dependency), else the one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv") or "uv"


def pip_config_files(environ: dict[str, str]) -> list[Path]:
    """pip's configuration files, in the order pip reads them (later ones win)."""
    home = Path(environ.get("HOME") or Path.home())
    xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "pip" / "pip.conf" for d in reversed(xdg_dirs.split(":")) if d]
    files += [Path("/etc/pip.conf"), home / ".pip" / "pip.conf"]
    files.append(Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "pip" / "pip.conf")
    if environ.get("PIP_CONFIG_FILE"):
        files.append(Path(environ["PIP_CONFIG_FILE"]))
    return files


def pip_settings(environ: dict[str, str]) -> dict[str, str]:
    """pip's index settings (``index-url``, ``extra-index-url``, ``find-links``, ``cert``,
    ``trusted-host``, ``proxy``, ``constraint``) from its files, then its ``PIP_*``
    variables."""
    keys = (
        "index-url",
        "extra-index-url",
        "find-links",
        "cert",
        "trusted-host",
        "proxy",
        "constraint",
    )
    found: dict[str, str] = {}
    if environ.get("PIP_CONFIG_FILE") != os.devnull:
        for path in pip_config_files(environ):
            parser = configparser.RawConfigParser()
            try:
                parser.read(path)
            except (OSError, configparser.Error):
                continue
            for section in ("global", "install"):
                if parser.has_section(section):
                    for key in keys:
                        if parser.has_option(section, key):
                            found[key] = parser.get(section, key)
    for key in keys:
        value = environ.get("PIP_" + key.upper().replace("-", "_"))
        if value:
            found[key] = value
    return found


def uv_source_args(index_url: str, find_links: list[str], offline: bool) -> list[str]:
    """uv's arguments for where packages come from: an index replacing the default one,
    extra directories or pages of packages, or only those and uv's cache."""
    args = ["--index-url", index_url] if index_url else []
    for link in find_links:
        args += ["--find-links", link]
    return [*args, "--offline"] if offline else args


def network_variables(environ: dict[str, str]) -> dict[str, str]:
    """The machine's proxy and certificate variables in ``environ``."""
    return {k: v for k, v in environ.items() if k in NETWORK_VARIABLES}


def uv_config_files(environ: dict[str, str], *, user_level: bool = True) -> list[Path]:
    """uv's own configuration files that exist (system level, and user level unless
    ``user_level`` is off)."""
    home = Path(environ.get("HOME") or Path.home())
    xdg_dirs = environ.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    files = [Path(d) / "uv" / "uv.toml" for d in xdg_dirs.split(":") if d]
    files.append(Path("/etc/uv/uv.toml"))
    if user_level:
        files.append(Path(environ.get("XDG_CONFIG_HOME") or home / ".config") / "uv" / "uv.toml")
    if environ.get("UV_CONFIG_FILE"):
        files.append(Path(environ["UV_CONFIG_FILE"]))
    return [f for f in files if f.is_file()]


def uv_has_index_settings(environ: dict[str, str], *, user_level: bool = True) -> bool:
    """Whether uv is told where to find packages by its own settings."""
    names = ("UV_DEFAULT_INDEX", "UV_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL")
    files = uv_config_files(environ, user_level=user_level)
    return any(environ.get(n) for n in names) or bool(files)


def uv_environment(
    environ: dict[str, str], *, system_certs: bool, other_account: bool = False
) -> dict[str, str]:
    """The variables a build's uv runs with: the machine's proxy and certificate
    variables, every ``UV_*`` setting, the system trust store, and pip's settings
    translated when uv has none of its own.

    ``other_account``: uv runs as another account with a home of its own (a Binder
    build's), which cannot read the hub account's files (its ``uv.toml``, its
    ``pip.conf``): pip's settings are read here, by the hub, and passed as variables, and
    only uv's system-wide files and variables count as uv's own."""
    env = {k: v for k, v in environ.items() if k in PASSED_VARIABLES or k.startswith("UV_")}
    if other_account:
        env.pop("XDG_CONFIG_HOME", None)  # the hub account's, not the build's
    if system_certs:
        env.setdefault("UV_SYSTEM_CERTS", "1")
    if uv_has_index_settings(environ, user_level=not other_account):
        return env
    pip = pip_settings(environ)
    if pip.get("index-url"):
        env["UV_DEFAULT_INDEX"] = pip["index-url"]
    if pip.get("extra-index-url"):
        env["UV_INDEX"] = " ".join(pip["extra-index-url"].split())
        # pip takes the best version from all its indexes; uv, by default, only from the
        # first that has the package.
        env.setdefault("UV_INDEX_STRATEGY", "unsafe-best-match")
    if pip.get("constraint"):
        env["UV_CONSTRAINT"] = " ".join(pip["constraint"].split())
    if pip.get("find-links"):
        env["UV_FIND_LINKS"] = ",".join(pip["find-links"].split())
    if pip.get("trusted-host"):
        env["UV_INSECURE_HOST"] = " ".join(pip["trusted-host"].split())
    if pip.get("cert") and "SSL_CERT_FILE" not in env:
        env["SSL_CERT_FILE"] = pip["cert"]
    if pip.get("proxy"):
        for name in ("HTTPS_PROXY", "HTTP_PROXY"):
            env.setdefault(name, pip["proxy"])
    return env
