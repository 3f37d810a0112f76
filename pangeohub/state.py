"""The hub's state directory: secrets generated once, kept, never printed.

Secrets (cookie secret, proxy token, auth-state crypt key, ...) are made with a
cryptographic RNG on first use, written with 0600 permissions and reused on every
restart. The hub database lives beside them unless an admin sets a ``db_url``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

STATE_DIR_ENV = "PANGEOHUB_STATE_DIR"
DEFAULT_STATE_DIR = "state"


def state_path(default: str | os.PathLike = DEFAULT_STATE_DIR) -> Path:
    """Where the hub's state directory is: ``$PANGEOHUB_STATE_DIR``, else ``default``
    (./state), resolved; nothing is created (:class:`StateDirectory` makes it)."""
    return Path(os.environ.get(STATE_DIR_ENV) or default).resolve()


def write_atomic(path: str | os.PathLike, text: str, mode: int = 0o600) -> Path:
    """Write ``text`` to ``path`` atomically, with permissions ``mode`` (default 0600:
    readable only by this process's user).

    The text goes to a hidden file beside ``path`` made with ``mode`` from the start, then
    replaces ``path`` in one rename: a reader sees the old file or the new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), mode)  # an earlier try's file, or a umask, may differ
        f.write(text)
    os.replace(tmp, path)
    return path


def write_private(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, readable only by this process's user (0600)."""
    return write_atomic(path, text, 0o600)


class StateDirectory:
    """A directory (0700) of the hub's secrets and local state."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).resolve()
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)

    @classmethod
    def from_env(cls, default: str | os.PathLike = DEFAULT_STATE_DIR) -> StateDirectory:
        """The directory named by ``$PANGEOHUB_STATE_DIR``, else ``default``."""
        return cls(state_path(default))

    def secret(self, name: str, nbytes: int = 32) -> str:
        """The secret ``name`` as hex, generated and stored (0600) on first use."""
        path = self._secret_path(name)
        if path.exists():
            value = path.read_text().strip()
            if value:
                return value
        value = secrets.token_hex(nbytes)
        self.write_private(path.name, value + "\n")
        return value

    def write_private(self, name: str, text: str) -> Path:
        """Write ``text`` to a file only the hub's user can read, atomically."""
        return write_private(self._secret_path(name), text)

    def subdir(self, name: str) -> Path:
        """A directory inside the state directory, created 0700 if needed."""
        path = self.path / name
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path

    @property
    def sqlite_url(self) -> str:
        """The default hub database: SQLite in the state directory (created 0600)."""
        path = self.path / "jupyterhub.sqlite"
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        return f"sqlite:///{path}"

    def _secret_path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"Invalid state file name: {name!r}")
        return self.path / name
