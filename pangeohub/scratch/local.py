"""Local scratch: a directory per user on this machine (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from pathlib import Path

from traitlets import Unicode, default

from ..isolation import Isolation
from ..isolation.accounts import ensure_account
from ..isolation.disks import private_directory
from .base import BackendUnavailable, Issued, ScratchBackend, ScratchConfigError
from .names import user_segment


def sweep(root: Path, max_age_seconds: float, now: float) -> int:
    """Delete files under ``root`` last modified more than ``max_age_seconds`` ago.

    Symbolic links are removed as links (never followed); old empty directories below a
    user's directory are removed too; the users' own directories are kept.
    Returns the number of files removed.
    """
    removed = 0
    cutoff = now - max_age_seconds
    for user_dir in (p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        for dirpath, dirnames, filenames in os.walk(user_dir, topdown=False):
            here = Path(dirpath)
            for name in filenames + [d for d in dirnames if (here / d).is_symlink()]:
                path = here / name
                with contextlib.suppress(FileNotFoundError):
                    info = path.lstat()
                    if info.st_mtime < cutoff and not stat.S_ISDIR(info.st_mode):
                        path.unlink()
                        removed += 1
            with contextlib.suppress(OSError):
                if here != user_dir and here.lstat().st_mtime < cutoff and not any(here.iterdir()):
                    here.rmdir()
    return removed


class LocalScratchBackend(ScratchBackend):
    """A directory per user under ``root``; no credentials needed on one machine."""

    name = "local"
    scheme = "file"

    root = Unicode(help="Directory holding one scratch directory per user.").tag(config=True)

    @default("root")
    def _default_root(self):
        isolation = Isolation(parent=self)
        if isolation.active:  # beside the homes: the state directory is root's alone
            return str(Path(isolation.home_root).parent / "scratch")
        state = os.environ.get("PANGEOHUB_STATE_DIR") or "state"
        return str(Path(state).resolve() / "scratch")

    def check_config(self) -> None:
        if not os.path.isabs(self.root):
            raise ScratchConfigError(
                f"c.LocalScratchBackend.root must be an absolute path, not {self.root!r}."
            )

    def path(self, user: str) -> Path:
        return Path(self.root) / user_segment(user)

    def url(self, user: str) -> str:
        return f"file://{self.path(user)}"

    async def start(self) -> None:
        self.check_config()
        try:
            if Isolation(parent=self).active:
                private_directory(Path(self.root))  # each user's directory is theirs alone
            else:
                Path(self.root).mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise ScratchConfigError(
                f"Cannot create the scratch directory {self.root} ({error.strerror})."
            ) from None

    def prepare(self, user: str) -> None:
        """``user``'s directory, made theirs (as root: their account's, in the root-owned
        scratch root, so it cannot be swapped for a link)."""
        path = self.path(user)
        isolation = Isolation(parent=self)
        if isolation.active:
            private_directory(Path(self.root))
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if isolation.active:
            name = isolation.account(user)
            account = ensure_account(name, f"{isolation.home_root}/{name}")
            os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)

    def client_environment(self, user: str, files: dict[str, str]) -> dict[str, str]:
        """fsspec makes a key's directories as it writes (as a bucket needs none): zarr's
        stores write ``<scratch>/data.zarr/zarr.json`` without making ``data.zarr`` first."""
        return {"FSSPEC_FILE_AUTO_MKDIR": "true"}

    async def credentials(self, user: str) -> Issued:
        try:
            self.prepare(user)
        except OSError as error:
            self.log.error("Cannot create scratch directory for %s: %s", user, error.strerror)
            raise BackendUnavailable("The scratch directory could not be created.") from None
        path = self.path(user)
        return Issued(url=self.url(user), credentials={"path": str(path)}, expiration=None)

    async def ensure_expiry(self) -> None:
        """Remove files older than ``expiry_days`` (this backend has no lifecycle rules)."""
        root = Path(self.root)
        if not root.is_dir():
            return
        removed = await asyncio.to_thread(sweep, root, self.expiry_days * 86400, self.now())
        self.log.info(
            "Scratch sweep removed %d file(s) older than %d days", removed, self.expiry_days
        )
