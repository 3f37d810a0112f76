"""What goes into one version of an environment, and the version's name (a digest of it).

The inputs are the admin's requirements files, the packages the admin added, the server
packages every environment gets, the hub's JupyterHub version, the constraints, the
Python it is made on and pangeohub's own server-side code: change any of them and the
next start gets a new version, while running servers keep theirs.
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jupyterhub

import pangeohub

from .settings import Environments, base_python

PACKAGE_DIR = Path(pangeohub.__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR.parent
_SOURCE_SUFFIXES = {".py", ".json", ".js", ".html", ".css", ".txt", ".in"}


class SpecError(ValueError):
    """An environment cannot be built as declared (the message says what to change)."""


@functools.cache
def pangeohub_digest() -> str:
    """A digest of pangeohub's own files (what servers import from their environment)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(PACKAGE_DIR)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def python_version(python: str) -> str:
    """``X.Y.Z`` of the interpreter ``python``."""
    if Path(python).resolve() == Path(base_python()).resolve():
        import sys

        return ".".join(map(str, sys.version_info[:3]))
    done = subprocess.run(
        [python, "-c", "import sys; print('.'.join(map(str, sys.version_info[:3])))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise SpecError(f"c.Environments.python = {python!r} does not run; set a Python 3.")
    return done.stdout.strip()


@dataclass(frozen=True)
class EnvironmentSpec:
    """One environment as declared now."""

    name: str
    description: str
    requirements: tuple[Path, ...]
    added: Path
    server_packages: tuple[str, ...]
    excluded: tuple[str, ...]
    constraints: tuple[Path, ...]
    python: str

    @classmethod
    def of(cls, settings: Environments, name: str) -> EnvironmentSpec:
        declared = settings.environments.get(name)
        if declared is None:
            known = ", ".join(sorted(settings.environments)) or "none"
            raise SpecError(f"There is no environment {name!r} (declared: {known}).")
        return cls(
            name=name,
            description=declared.get("description", ""),
            requirements=tuple(Path(p) for p in declared.get("requirements") or ()),
            added=Path(settings.added_dir) / f"{name}.txt",
            server_packages=tuple(settings.server_packages),
            excluded=tuple(settings.excluded_packages),
            constraints=tuple(Path(p) for p in settings.constraints),
            python=settings.python,
        )

    @property
    def overrides(self) -> list[str]:
        """Versions held whatever the requirements say: the hub's JupyterHub; and the
        excluded packages, with a marker that never matches."""
        never = [f"{name} ; sys_platform == 'never'" for name in self.excluded]
        return [f"jupyterhub=={jupyterhub.__version__}", *never]

    def added_packages(self) -> list[str]:
        """The requirements the admin added (``pangeohub-environments add``)."""
        try:
            lines = self.added.read_text().splitlines()
        except FileNotFoundError:
            return []
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    def _read(self, path: Path, what: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as error:
            raise SpecError(
                f"Environment {self.name!r}: cannot read its {what} {path} "
                f"({error.strerror}); fix the path in c.Environments."
            ) from None

    def key(self) -> str:
        """The version these inputs make (12 hex digits)."""
        digest = hashlib.sha256()
        parts: list[bytes] = [
            self.name.encode(),
            python_version(self.python).encode(),
            str(Path(self.python).resolve()).encode(),
            "\n".join(self.server_packages).encode(),
            "\n".join(self.overrides).encode(),
            "\n".join(self.added_packages()).encode(),
            pangeohub_digest().encode(),
        ]
        parts += [self._read(p, "requirements file") for p in self.requirements]
        parts += [self._read(p, "constraints file") for p in self.constraints]
        for part in parts:
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()[:12]
