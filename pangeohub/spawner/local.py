"""The embedded default: servers as local processes, one kept disk each.

As root (with ``c.Isolation.enabled``, the default) each server runs as its user's own
system account, in a cgroup holding its profile's memory and CPU, with a loop-mounted
disk image of the profile's size as its home. As an ordinary account every server runs
as that account in a directory under ``server_root``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import html
import os
import shutil
import stat
import sys
from pathlib import Path

from jupyterhub.slugs import safe_slug
from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

from ..activity import CONFIG_DIR as ACTIVITY_CONFIG_DIR
from ..environments import servers as environments
from ..isolation import Isolation
from ..isolation.accounts import AccountCollision, lookup
from ..isolation.cgroups import ServerCgroup
from ..isolation.disks import ServerDisk, mounted_at, private_directory, shared_mount
from ..isolation.sandbox import signal_sandbox
from ..lab.environment import LAB_DATA_DIR
from ..lab.machine import Machine
from ..lab.picker import ProfilePicker, describe, mark_previous, render_fancy_form
from ..lab.shared import SharedData
from ..parts import hub_part
from ..policy import PolicyError
from ..state import StateDirectory
from .mixin import PangeoSpawnerMixin, refusal

DEFAULT_SERVER_DIR = "_default"


def remove_tree(root: Path, parts: list[str], log) -> None:
    """Delete ``root/<parts...>`` without following a link anywhere on the way.

    A link where a directory should be (a server's directory replaced by a link to
    another's) is removed as a link; its target is never touched.
    """
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            info = path.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISLNK(info.st_mode):
            if i == len(parts) - 1:
                log.warning("%s is a link, not a server directory: removing only the link", path)
                path.unlink()
            else:
                log.error("Refusing to delete under %s: it is a link", path)
            return
    shutil.rmtree(path)  # rmtree never follows links below the top


class PangeoLocalSpawner(
    environments.EnvironmentSpawnerMixin, PangeoSpawnerMixin, LocalProcessSpawner
):
    """Local process spawner carrying pangeohub's policies and isolation.

    Each server has its own home: kept when the server stops, deleted when (and only
    when) the server is deleted. See :class:`~pangeohub.isolation.Isolation` for what
    is isolated and enforced as root, and what is not as an ordinary account.
    """

    server_root = Unicode(
        help="""Directory holding one directory per server when the hub is not isolating
        (default: <state dir>/servers). As root, see c.Isolation.home_root.""",
    ).tag(config=True)

    @default("server_root")
    def _default_server_root(self):
        return str(StateDirectory.from_env().subdir("servers"))

    @default("cmd")
    def _default_cmd(self):
        # The hub's own interpreter: works without the virtualenv on PATH.
        return [sys.executable, "-m", "jupyterhub.singleuser"]

    @default("options_form")
    def _default_options_form(self):
        return self.render_profile_picker

    _isolation: Isolation | None = None

    @property
    def isolation(self) -> Isolation:
        if self._isolation is None:
            self._isolation = Isolation(parent=self)
        return self._isolation

    @property
    def isolated(self) -> bool:
        """Whether this server runs as its user's own account."""
        return self.isolation.active

    @property
    def account(self) -> str:
        """The system account this server runs as."""
        return self.isolation.account(self.user.name)

    @property
    def server_dir_name(self) -> str:
        return safe_slug(self.name) if self.name else DEFAULT_SERVER_DIR

    @property
    def server_directory(self) -> Path:
        """This server's home: <home_root>/<account>/<server> as root, else
        <server_root>/<user>/<server>."""
        return self.directory_for(self.name)

    def directory_for(self, server_name: str) -> Path:
        """The home of this user's server ``server_name``."""
        name = safe_slug(server_name) if server_name else DEFAULT_SERVER_DIR
        if self.isolated:
            return Path(self.isolation.home_root) / self.account / name
        return Path(self.server_root) / safe_slug(self.user.name) / name

    def image_for(self, server_name: str) -> Path:
        """The disk image of this user's server ``server_name`` (isolated servers)."""
        name = safe_slug(server_name) if server_name else DEFAULT_SERVER_DIR
        return Path(self.isolation.disk_root) / self.account / f"{name}.img"

    @property
    def disk(self) -> ServerDisk | None:
        """This server's disk image, when it gets one (root, loop devices)."""
        if not self.isolated or self.isolation.disk_problem() is not None:
            return None
        account = lookup(self.account)
        size = self.profile.disk_size if self.profile is not None else 0
        return ServerDisk(
            self.image_for(self.name),
            self.server_directory,
            size,
            account.pw_uid if account else 0,
            account.pw_gid if account else 0,
        )

    @property
    def cgroup(self) -> ServerCgroup | None:
        """This server's cgroup, when the machine has one to give (root)."""
        version = self.isolation.cgroups()
        if version is None:
            return None
        relative = f"{self.isolation.cgroup_parent}/{self.account}/{self.server_dir_name}"
        return ServerCgroup(relative, version)

    async def move_disk(self, old_name: str, new_name: str) -> None:
        """A renamed server keeps its directory: it moves to the new name (the server
        is stopped; JupyterHub refuses to rename a running one)."""
        old, new = self.directory_for(old_name), self.directory_for(new_name)
        images = (self.image_for(old_name), self.image_for(new_name)) if self.isolated else None
        if new.exists() or (images and images[1].exists()):
            raise refusal(
                PolicyError(
                    409,
                    f"A directory for a server named {new_name!r} is still on this hub's "
                    "disk, so the rename would mix two servers' files. Choose another name, "
                    "or ask a hub admin to remove the old directory.",
                )
            )
        if mounted_at(old):
            raise refusal(
                PolicyError(409, "This server's disk is still in use; stop the server first.")
            )
        if images and images[0].exists():
            images[0].rename(images[1])
        if old.exists():
            old.rename(new)
            self.log.info("Moved %s's directory to %s", self._log_name, new)

    def allowed_profiles(self):
        """The user's profiles, as this machine can run them (:class:`..lab.machine.Machine`)."""
        machine = Machine.this_one()
        return [machine.fit(p) for p in super().allowed_profiles()]

    # -- the one point a profile is applied: before the admin's pre_spawn_hook --

    _profile_applied = False  # this start's profile is on the spawner's traits

    def run_pre_spawn_hook(self):
        """This start's profile on the spawner's own traits (``cpu_limit``, ``mem_limit``,
        guarantees), then the admin's ``pre_spawn_hook``: what the hook changes is what
        the server gets (its cgroup reads the traits)."""
        self.apply_start_profile()
        return super().run_pre_spawn_hook()

    def apply_start_profile(self) -> None:
        """Apply the profile the policy allows for this start, once per start (before the
        ``pre_spawn_hook`` when the hub runs it, else at the start)."""
        if not self._profile_applied:
            self.apply_profile(self.resolve_profile((self.user_options or {}).get("profile")))
            self._profile_applied = True

    def apply_profile(self, profile) -> None:
        """``profile`` capped at this machine's size (:class:`..lab.machine.Machine`), its
        limits set on the spawner's traits."""
        self.profile = Machine.this_one().fit(profile)
        for name, value in self.profile_traits(self.profile).items():
            setattr(self, name, value)

    def clear_state(self):
        super().clear_state()
        self._profile_applied = False  # a new start applies its profile again

    def profile_as_run(self, profile):
        """A server's image is its environment's version (or its launched environment):
        its Dask workers run there too."""
        if self._launch is not None:
            from ..binder.server import launched_image

            return dataclasses.replace(profile, image=launched_image(self._launch))
        if self._environment is not None:
            return dataclasses.replace(profile, image=self._environment.image)
        return profile

    def render_profile_picker(self, spawner=None) -> str:
        """The spawn page's form: the user's allowed profiles, default pre-selected."""
        profiles = self.allowed_profiles()
        if not profiles:
            return (
                "<p>No server profile is available to you. "
                "Ask a hub admin to add you to a group that may use one.</p>"
            )
        previous = (self.user_options or {}).get("profile")
        if ProfilePicker(parent=self).active:
            entries = [
                {
                    "display_name": p.display_name,
                    "slug": p.slug,
                    "description": describe(p, self.environment_label(p)),
                    "default": p.default,
                }
                for p in profiles
            ]
            if not any(e["default"] for e in entries):
                entries[0]["default"] = True
            return render_fancy_form(mark_previous(entries, previous)) + self._launch_fields()
        chosen = next((p for p in profiles if p.slug == previous), None)
        chosen = chosen or next((p for p in profiles if p.default), profiles[0])
        items = []
        for p in profiles:
            checked = " checked" if p is chosen else ""
            items.append(
                f'<label class="pangeo-profile list-group-item">'
                f'<input type="radio" name="profile" value="{html.escape(p.slug)}"{checked}> '
                f"<strong>{html.escape(p.display_name)}</strong> "
                f'<span class="text-muted">{html.escape(self.resources_line(p))}</span>'
                f"<br><small>{html.escape(p.description)}</small></label>"
            )
        picker = '<div class="list-group pangeo-profiles">' + "".join(items) + "</div>"
        return picker + self._launch_fields()

    def _launch_fields(self) -> str:
        """Launch from a repository (pangeohub.binder), beside the profiles."""
        from ..binder.form import launch_fields
        from ..binder.launcher import BinderLauncher
        from ..lab.launch_link import link_generator

        launcher = hub_part(BinderLauncher, self)
        if not launcher.enabled:
            return ""
        base, github = self.hub.base_url, launcher.github_url
        return launch_fields(base, github) + link_generator(base, github)

    @default("options_from_form")
    def _default_options_from_form(self):
        return self.read_profile_form

    def read_profile_form(self, formdata) -> dict:
        """The spawn page's choice: ``{"profile": slug}`` (JupyterHub's
        ``options_from_form`` unless the admin sets another; the policy checks the result).
        A launched server started again from the spawn page keeps its repository's
        environment."""
        options = {"profile": (formdata.get("profile") or [None])[0]}
        saved = getattr(getattr(self, "orm_spawner", None), "user_options", None) or {}
        if isinstance(saved.get("binder"), dict):
            options["binder"] = saved["binder"]
        return options

    def get_args(self):
        args = super().get_args()
        if os.getuid() == 0 and not self.isolated and "--allow-root" not in args:
            args.append("--allow-root")
        return args

    def user_env(self, env):
        env["HOME"] = str(self.server_directory)
        env["SHELL"] = "/bin/bash"
        env["USER"] = env["LOGNAME"] = self.account if self.isolated else _whoami()
        if self.profile is not None:
            env["PANGEO_DISK_SIZE"] = str(self.profile.disk_size)
            env["JUPYTER_IMAGE_SPEC"] = self.profile.image
        if self._environment is not None:  # its own copy of pangeohub's extensions
            env.update(environments.server_variables(self._environment, env))
        else:
            # Enable pangeohub's activity extension (a computing kernel counts as activity).
            config_path = [ACTIVITY_CONFIG_DIR, env.get("JUPYTER_CONFIG_PATH", "")]
            env["JUPYTER_CONFIG_PATH"] = os.pathsep.join(p for p in config_path if p)
            # and its labextension (the top bar's CPU of the limit and scratch location)
            data_path = [LAB_DATA_DIR, env.get("JUPYTER_PATH", "")]
            env["JUPYTER_PATH"] = os.pathsep.join(p for p in data_path if p)
        if self._launch is not None:  # on the environment's version it is layered on
            from ..binder.server import launched_variables

            env.update(launched_variables(self._launch, env, self._environment))
        return env

    _launching_sandbox = False  # the command being started is the sandbox (bwrap)

    def make_preexec_fn(self, name):
        """Run a command in the server's home; as root, in its cgroup and as its account
        (the server's own command is the sandbox, which drops to the account itself)."""
        home = str(self.server_directory)
        if not self.isolated:
            return lambda: os.chdir(home)
        account = lookup(self.account)
        if account is None:
            raise RuntimeError(f"no account {self.account}")
        uid, gid = account.pw_uid, account.pw_gid
        groups = self.account_groups()
        cgroup = self.cgroup
        drop = not self._launching_sandbox

        def preexec():
            if cgroup is not None:
                cgroup.join()  # everything the server starts stays in it
            os.chdir(home)
            if drop:
                os.setgroups(groups)
                os.setgid(gid)
                os.setuid(uid)

        return preexec

    def account_groups(self) -> list[int]:
        """The supplementary groups the server's account runs with."""
        shared = self.shared_data
        gid = shared.writer_gid() if shared.is_writer(self.account) else None
        return [gid] if gid is not None else []

    def sandboxed(self, command: list[str]) -> list[str]:
        """``command`` in the person's own space (private /tmp, own processes; see
        :mod:`pangeohub.isolation.sandbox`), or as it is when not isolated."""
        account = lookup(self.account) if self.isolated else None
        sandbox = account and self.isolation.sandbox_for(
            account.pw_uid,
            account.pw_gid,
            self.account_groups(),
            keep=[self.server_directory.parent],
        )
        return sandbox.wrap(command) if sandbox else command

    async def _signal(self, sig):
        """Signal the server itself, not the sandbox around it (which would end it at
        once, without its own shutdown)."""
        return signal_sandbox(self.pid, sig)

    @property
    def shared_data(self) -> SharedData:
        return hub_part(SharedData, self)

    def link_shared_data(self, uid: int, gid: int) -> None:
        """The shared data directory, linked into the server's home (c.SharedData)."""
        shared = self.shared_data
        if shared.enabled:
            shared.link_into(self.server_directory, uid, gid)

    def prepare_home(self) -> bool:
        """Account, disk (or directory) and cgroup for this start; True if the disk is new."""
        if not self.isolated:
            self.server_directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.link_shared_data(os.getuid(), os.getgid())
            return False
        home = self.server_directory
        private_directory(Path(self.isolation.home_root))
        # unmounting a disk here unmounts it in every sandbox too (docs/root-boundary.md)
        if not shared_mount(Path(self.isolation.home_root)):
            self.log.warning(
                "%s is not a shared mount yet (servers of an earlier version are running): "
                "a stopped server's disk may stay in use until every server has restarted",
                self.isolation.home_root,
            )
        account = self.isolation.ensure_account(self.account)
        disk = self.disk
        made = False
        if disk is not None:
            made = disk.ensure()
        else:
            private_directory(home.parent)
            home.mkdir(mode=0o700, exist_ok=True)
            os.chown(home, account.pw_uid, account.pw_gid, follow_symlinks=False)
        self.link_shared_data(account.pw_uid, account.pw_gid)
        self.prepare_cgroup()
        return made

    def prepare_cgroup(self) -> None:
        """This server's cgroup, emptied of anything a crashed run left, holding the
        spawner's own limits (a ``pre_spawn_hook``'s changes included)."""
        cgroup = self.cgroup
        if cgroup is not None:
            cgroup.kill_all()
            cgroup.create(**self.cgroup_limits())

    def cgroup_limits(self) -> dict:
        """The spawner's ``mem_limit``, ``cpu_limit`` and guarantees (at most the limits),
        as :meth:`ServerCgroup.create` takes them; None: no limit."""
        mem_limit, cpu_limit = self.mem_limit or None, self.cpu_limit or None
        return {
            "mem_limit": mem_limit,
            "cpu_limit": cpu_limit,
            "mem_guarantee": _at_most(self.mem_guarantee, mem_limit),
            "cpu_guarantee": _at_most(self.cpu_guarantee, cpu_limit),
        }

    _launch = None  # the launched environment (pangeohub.binder) this start runs in

    async def start(self):
        from ..binder.server import copy_repository, launched_command, launched_environment

        try:
            self._launch = launched_environment(self)  # a 4xx before any disk is made
            try:
                self.account  # noqa: B018 (recorded, or refused, before anything is made)
            except AccountCollision as error:
                raise refusal(PolicyError(409, str(error))) from None
            self.apply_start_profile()
            await self.prepare_start()
            try:
                made = await asyncio.to_thread(self.prepare_home)
            except AccountCollision as error:  # cannot have the uid its files carry
                raise refusal(PolicyError(409, str(error))) from None
            if made:
                self.log.info("Made %s's disk (%s bytes)", self._log_name, self.profile.disk_size)
            command = list(self.cmd)  # the spawner's own, as the admin or a hook set it
            if self._environment is not None and self._launch is None:
                command = environments.server_command(self._environment, command)
            if self._launch is not None:  # its own Python (layered on the environment's)
                home, preexec = str(self.server_directory), self.make_preexec_fn(self.user.name)
                if not await asyncio.to_thread(copy_repository, self._launch, home, preexec):
                    self.log.warning(
                        "Some of %s's repository files were not copied", self._log_name
                    )
                command = launched_command(self._launch, command)
            return await self._start_command(command)
        finally:
            self._profile_applied = False

    async def _start_command(self, command: list[str]) -> str:
        """LocalProcessSpawner's start of ``command`` (sandboxed when isolated); the
        spawner's ``cmd`` is given back as it was, so the next start begins from it."""
        wrapped = self.sandboxed(command)
        own_cmd = self.cmd
        self._launching_sandbox, self.cmd = wrapped is not command, wrapped
        try:
            return await super().start()
        finally:
            self._launching_sandbox, self.cmd = False, own_cmd

    def release_home(self) -> None:
        """After a stop: end what is left in the cgroup, remove it, unmount the disk."""
        if not self.isolated:
            return
        cgroup = self.cgroup
        if cgroup is not None:
            cgroup.remove()
        disk = self.disk
        if disk is not None:
            disk.unmount()

    async def stop(self, now=False):
        await super().stop(now=now)
        await asyncio.to_thread(self.release_home)

    async def delete_forever(self):
        """The server is deleted: its disk (or directory) goes with it, nothing else."""
        self.log.info("Deleting %s's disk", self._log_name)
        await asyncio.to_thread(self._delete_home)

    def _delete_home(self) -> None:
        if self.isolated:
            try:
                self.account  # noqa: B018
            except AccountCollision:
                return  # refused at its start: it never had a disk
            self.release_home()
            disk = self.disk
            if disk is not None:
                disk.delete()
            root, parts = Path(self.isolation.home_root), [self.account, self.server_dir_name]
        else:
            root, parts = Path(self.server_root), [safe_slug(self.user.name), self.server_dir_name]
        remove_tree(root, parts, self.log)


def _at_most(value, cap):
    """``value`` no higher than ``cap`` (either may be None: no bound)."""
    if value is None or cap is None:
        return value or None
    return min(value, cap)


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
