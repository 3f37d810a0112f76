"""The shared data directory: every server sees it read-only, admins (or a group) write.

One machine: a directory on the hub's machine (``c.SharedData.path``), owned by root and
readable by everyone; each server finds it at ``~/<link_name>`` (a link in its home) and
in ``$PANGEO_SHARED_DIR``. People's accounts cannot write to it: the refusal is the
kernel's (permissions), not the Lab's. Admins write as root, or as members of
``writer_group`` (a system group: the directory is group-writable and servers of its
members keep the group). As an ordinary account (a laptop) everything runs as that one
account, so nothing is read-only and the hub says so.

Kubernetes: ``kubernetes_volume`` (e.g. an NFS share or a ReadWriteMany claim) mounted
``readOnly`` into every pod at ``mount_path``; pods of ``writer_groups`` get it writable.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from traitlets import Bool, Dict, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..isolation import Isolation
from ..state import StateDirectory

SHARED_DIR_ENV = "PANGEO_SHARED_DIR"


class SharedData(LoggingConfigurable):
    """The shared data directory (``c.SharedData``)."""

    enabled = Bool(
        True, help="Give every server the shared data directory. False: no shared directory."
    ).tag(config=True)
    path = Unicode(
        help="""The shared directory on the hub's machine (one machine). Default:
        /srv/pangeohub/<hub id>/shared as root, <state dir>/shared otherwise. The hub makes
        it (root-owned, mode 0755, or 2775 with ``writer_group``) if it is missing.""",
    ).tag(config=True)
    link_name = Unicode(
        "shared",
        help="Name of the link to the shared directory in every server's home (one machine).",
    ).tag(config=True)
    writer_group = Unicode(
        "",
        help="""A system group (one machine, as root) whose members' servers may write to
        the shared directory: it becomes the directory's group, group-writable. Empty:
        only root writes.""",
    ).tag(config=True)
    mount_path = Unicode(
        "/home/jovyan/shared",
        help="Where pods see the shared volume (Kubernetes).",
    ).tag(config=True)
    kubernetes_volume = Dict(
        help="""The shared volume of every pod (Kubernetes), as in a pod spec without its
        name, e.g. {"persistentVolumeClaim": {"claimName": "shared-data"}} or
        {"nfs": {"server": "10.0.0.2", "path": "/shared"}}. Empty: no shared volume.""",
    ).tag(config=True)
    writer_groups = List(
        Unicode(),
        help="""JupyterHub groups (``org:team``) whose pods mount the shared volume
        writable (Kubernetes). Everyone else's is mounted readOnly.""",
    ).tag(config=True)

    @default("path")
    def _default_path(self):
        isolation = Isolation(parent=self.parent) if self.parent else Isolation()
        if isolation.active:
            return f"/srv/pangeohub/{isolation.hub_id}/shared"
        return str(StateDirectory.from_env().path / "shared")

    # --- one machine ------------------------------------------------------

    def writer_gid(self) -> int | None:
        """The writer group's id, or None (no group, or not on this machine)."""
        if not self.writer_group:
            return None
        try:
            return grp.getgrnam(self.writer_group).gr_gid
        except KeyError:
            self.log.warning(
                "c.SharedData.writer_group %r is not a group on this machine; only root "
                "writes to the shared directory.",
                self.writer_group,
            )
            return None

    def is_writer(self, account: str) -> bool:
        """Whether the system account ``account`` is in the writer group."""
        if not self.writer_group:
            return False
        try:
            return account in grp.getgrnam(self.writer_group).gr_mem
        except KeyError:
            return False

    def ensure_directory(self) -> Path:
        """Make the shared directory (as root: owned by root, people read, writers write)."""
        path = Path(self.path)
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        if os.geteuid() == 0:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
                raise OSError(f"{path} is not a directory")
            gid = self.writer_gid()
            os.chown(path, 0, gid if gid is not None else 0, follow_symlinks=False)
            os.chmod(path, 0o2775 if gid is not None else 0o755)
        return path

    def link_into(self, home: Path, uid: int, gid: int) -> None:
        """Put ``home/<link_name>`` pointing at the shared directory (kept if it is there;
        a file of the person's own by that name is left alone).

        As root this works inside a directory the person controls, so every step goes
        through the home's descriptor and never follows a link (docs/root-boundary.md)."""
        target = str(self.ensure_directory())
        name = self.link_name
        fd = os.open(home, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            try:
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                info = None
            if info is not None and not stat.S_ISLNK(info.st_mode):
                self.log.info(
                    "%s exists and is not a link; the shared directory is not linked", home / name
                )
                return
            if info is not None:
                if os.readlink(name, dir_fd=fd) == target:
                    return
                os.unlink(name, dir_fd=fd)
            os.symlink(target, name, dir_fd=fd)
            if os.geteuid() == 0:
                os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)

    # --- Kubernetes -------------------------------------------------------

    def kubernetes_mounts(self, groups: list[str]) -> tuple[list[dict], list[dict]]:
        """The pod's (volumes, volume_mounts) for a member of ``groups``."""
        if not self.enabled or not self.kubernetes_volume:
            return [], []
        writable = bool({g.lower() for g in groups} & {g.lower() for g in self.writer_groups})
        volume = {"name": "pangeo-shared", **self.kubernetes_volume}
        mount = {"name": "pangeo-shared", "mountPath": self.mount_path, "readOnly": not writable}
        return [volume], [mount]
