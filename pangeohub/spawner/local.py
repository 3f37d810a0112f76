"""The embedded default: servers as local processes, one kept disk each.

As root (with ``c.Isolation.enabled``, the default) each server runs as its user's own
system account, in a cgroup holding its profile's memory and CPU, with a loop-mounted
disk image of the profile's size as its home. As an ordinary account every server runs
as that account in a directory under ``server_root``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys

from jupyterhub.spawner import LocalProcessSpawner
from traitlets import Unicode, default

from ..activity import CONFIG_DIR as ACTIVITY_CONFIG_DIR
from ..environments import servers as environments
from ..isolation import Isolation
from ..isolation.accounts import AccountCollision, lookup
from ..isolation.sandbox import signal_sandbox
from ..lab.environment import LAB_DATA_DIR
from ..lab.machine import Machine
from ..policy import PolicyError
from ..state import StateDirectory
from .local_form import ProfileForm
from .local_homes import ServerHomes
from .mixin import PangeoSpawnerMixin, refusal

# Kernels' connection files and IPC sockets (a socket's path has at most 107 bytes).
PRIVATE_RUNTIME_DIR = "/tmp/jupyter-runtime"


class PangeoLocalSpawner(
    ProfileForm,
    ServerHomes,
    environments.EnvironmentSpawnerMixin,
    PangeoSpawnerMixin,
    LocalProcessSpawner,
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

    def get_args(self):
        args = super().get_args()
        if os.getuid() == 0 and not self.isolated and "--allow-root" not in args:
            args.append("--allow-root")
        if self.isolation.sandboxed:
            # Kernels over TCP on 127.0.0.1 could be listened to by anyone on the machine
            # (a kernel's IOPub is a PUB socket: no key is needed to subscribe); over IPC
            # sockets in the server's private runtime directory only the server reaches
            # them.
            args.append("--KernelManager.transport=ipc")
        return args

    def user_env(self, env):
        env["HOME"] = str(self.server_directory)
        env["SHELL"] = "/bin/bash"
        env["USER"] = env["LOGNAME"] = self.account if self.isolated else _whoami()
        if self.isolation.sandboxed:  # in the sandbox's own /tmp: short socket paths
            env["JUPYTER_RUNTIME_DIR"] = PRIVATE_RUNTIME_DIR
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
        own_cgroup = [str(d) for d in self.cgroup.directories] if self.cgroup else []
        sandbox = account and self.isolation.sandbox_for(
            account.pw_uid,
            account.pw_gid,
            self.account_groups(),
            # its home, and its cgroup among the hidden ones (its out-of-memory notice)
            keep=[self.server_directory.parent, *own_cgroup],
        )
        return sandbox.wrap(command) if sandbox else command

    async def _signal(self, sig):
        """Signal the server itself, not the sandbox around it (which would end it at
        once, without its own shutdown)."""
        return signal_sandbox(self.pid, sig)

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

    async def stop(self, now=False):
        await super().stop(now=now)
        await asyncio.to_thread(self.release_home)


def _whoami() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name
