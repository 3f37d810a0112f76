"""The embedded default: servers as local processes, one kept directory each."""

from __future__ import annotations

import html
import os
import shutil
import sys
from pathlib import Path

from jupyterhub.slugs import safe_slug
from jupyterhub.spawner import SimpleLocalProcessSpawner
from traitlets import Unicode, default

from ..activity import CONFIG_DIR as ACTIVITY_CONFIG_DIR
from ..policy import PolicyError
from ..state import StateDirectory
from .mixin import PangeoSpawnerMixin, refusal

DEFAULT_SERVER_DIR = "_default"


class PangeoLocalSpawner(PangeoSpawnerMixin, SimpleLocalProcessSpawner):
    """Local process spawner carrying pangeohub's policies.

    Each server works in its own directory under ``server_root``: kept when the
    server stops, deleted when (and only when) the server is deleted. Disk size,
    CPU and memory limits are passed to the server as environment variables but
    not enforced: a local process has no quota or hard memory cap.
    """

    server_root = Unicode(
        help="Directory holding one directory per server (default: <state dir>/servers).",
    ).tag(config=True)

    @default("server_root")
    def _default_server_root(self):
        return str(StateDirectory.from_env().subdir("servers"))

    @default("home_dir")
    def _default_home_dir(self):
        return str(self.server_directory)

    @default("cmd")
    def _default_cmd(self):
        # The hub's own interpreter: works without the virtualenv on PATH.
        return [sys.executable, "-m", "jupyterhub.singleuser"]

    @default("options_form")
    def _default_options_form(self):
        return self.render_profile_picker

    @property
    def server_directory(self) -> Path:
        """This server's directory: <server_root>/<user>/<server>."""
        return self.directory_for(self.name)

    def directory_for(self, server_name: str) -> Path:
        """The directory of this user's server ``server_name``."""
        user_dir = safe_slug(self.user.name)
        server_dir = safe_slug(server_name) if server_name else DEFAULT_SERVER_DIR
        return Path(self.server_root) / user_dir / server_dir

    async def move_disk(self, old_name: str, new_name: str) -> None:
        """A renamed server keeps its directory: it moves to the new name (the server
        is stopped; JupyterHub refuses to rename a running one)."""
        old, new = self.directory_for(old_name), self.directory_for(new_name)
        if new.exists():
            raise refusal(
                PolicyError(
                    409,
                    f"A directory for a server named {new_name!r} is still on this hub's "
                    "disk, so the rename would mix two servers' files. Choose another name, "
                    "or ask a hub admin to remove the old directory.",
                )
            )
        if old.exists():
            old.rename(new)
            self.log.info("Moved %s's directory to %s", self._log_name, new)

    def render_profile_picker(self, spawner=None) -> str:
        """The spawn page's form: the user's allowed profiles, default pre-selected."""
        profiles = self.allowed_profiles()
        if not profiles:
            return (
                "<p>No server profile is available to you. "
                "Ask a hub admin to add you to a group that may use one.</p>"
            )
        previous = (self.user_options or {}).get("profile")
        chosen = next((p for p in profiles if p.slug == previous), None)
        chosen = chosen or next((p for p in profiles if p.default), profiles[0])
        items = []
        for p in profiles:
            checked = " checked" if p is chosen else ""
            items.append(
                f'<label class="pangeo-profile list-group-item">'
                f'<input type="radio" name="profile" value="{html.escape(p.slug)}"{checked}> '
                f"<strong>{html.escape(p.display_name)}</strong> "
                f'<span class="text-muted">{html.escape(p.summary())}</span>'
                f"<br><small>{html.escape(p.description)}</small></label>"
            )
        return '<div class="list-group pangeo-profiles">' + "".join(items) + "</div>"

    def options_from_form(self, formdata):
        """Read the chosen profile, refusing one the user may not use (4xx)."""
        slug = (formdata.get("profile") or [None])[0]
        return {"profile": self.resolve_profile(slug).slug}

    def get_args(self):
        args = super().get_args()
        if os.getuid() == 0 and "--allow-root" not in args:
            args.append("--allow-root")
        return args

    def user_env(self, env):
        env = super().user_env(env)
        if self.profile is not None:
            env["PANGEO_DISK_SIZE"] = str(self.profile.disk_size)
        # Enable pangeohub's activity extension (a computing kernel counts as activity).
        config_path = [ACTIVITY_CONFIG_DIR, env.get("JUPYTER_CONFIG_PATH", "")]
        env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in config_path if p)
        return env

    async def start(self):
        await self.prepare_start()
        self.server_directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        return await super().start()

    async def delete_forever(self):
        """The server is deleted: its directory goes with it."""
        directory = self.server_directory.resolve()
        root = Path(self.server_root).resolve()
        if root not in directory.parents:
            self.log.error("Refusing to delete %s: outside %s", directory, root)
            return
        if directory.exists():
            self.log.info("Deleting %s's directory %s", self._log_name, directory)
            shutil.rmtree(directory)
