"""Built environments on disk: ``<root>/<name>/<version>/`` with ``env/`` (the virtual
environment) and ``pangeohub-environment.json`` (what it holds), sealed read-only.

A version's name is a digest of everything that went into it (:mod:`.spec`), so adding a
package makes a new version beside the old one. Servers run the version that was current
when they started; versions that are neither current nor run by a server are removed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from .seal import unseal_and_remove

META = "pangeohub-environment.json"
IMAGE_PREFIX = "uv-env:"  # an environment named as a server's image (what Dask workers run)
_VERSION = re.compile(r"^[0-9a-f]{12}$")
TRASH = ".removing"


@dataclass(frozen=True)
class Version:
    """One built version of an environment."""

    name: str
    key: str
    path: Path
    meta: dict

    @property
    def prefix(self) -> Path:
        return self.path / "env"

    @property
    def bin(self) -> str:
        return str(self.prefix / "bin")

    @property
    def python(self) -> str:
        return str(self.prefix / "bin" / "python")

    @property
    def site_packages(self) -> Path:
        """Its packages' directory (as the build found it; else where the hub's would be)."""
        recorded = self.meta.get("site_packages")
        if recorded:
            return self.path / recorded
        relative = Path(sysconfig.get_path("purelib")).relative_to(sysconfig.get_path("data"))
        return self.prefix / relative

    @property
    def image(self) -> str:
        """The version as a server's image (reported to Dask Gateway)."""
        return f"{IMAGE_PREFIX}{self.path}"

    @property
    def packages(self) -> list[dict]:
        """``[{"name", "version"}]``, as installed."""
        return list(self.meta.get("packages", []))

    def package_version(self, name: str) -> str | None:
        wanted = _normal(name)
        return next((p["version"] for p in self.packages if _normal(p["name"]) == wanted), None)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_version(root: Path, name: str, key: str) -> Version | None:
    """The finished version ``key`` of ``name`` (never a half-built one), or None."""
    if not _VERSION.match(key or "") or "/" in name or name.startswith("."):
        return None
    path = root / name / key
    try:
        meta = json.loads((path / META).read_text())
    except (OSError, ValueError):
        return None
    return Version(name, key, path, meta)


def versions(root: Path, name: str) -> list[Version]:
    """Every finished version of ``name``, oldest build first."""
    directory = root / name
    if not directory.is_dir():
        return []
    found = (read_version(root, name, p.name) for p in directory.iterdir())
    return sorted((v for v in found if v is not None), key=lambda v: v.meta.get("built", 0))


def version_of_image(root: Path, image: str) -> Version | None:
    """The version an image string (``uv-env:<path>``) names, if it is one under ``root``."""
    if not isinstance(image, str) or not image.startswith(IMAGE_PREFIX):
        return None
    path = Path(image[len(IMAGE_PREFIX) :])
    if not path.is_absolute() or path.parent.parent != root:
        return None
    return read_version(root, path.parent.name, path.name)


def remove_unused(root: Path, name: str, keep: set[str]) -> list[str]:
    """Remove the versions of ``name`` whose keys are not in ``keep``; their names."""
    removed = []
    for version in versions(root, name):
        if version.key in keep:
            continue
        trash = root / TRASH / f"{name}-{version.key}-{secrets.token_hex(4)}"
        trash.parent.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() != 0:
            os.chmod(version.path.parent, 0o755)
            os.chmod(version.path, 0o755)  # rename needs the directory writable when not root
        os.rename(version.path, trash)  # gone from the environment's directory at once
        unseal_and_remove(trash)
        removed.append(version.key)
    return removed
