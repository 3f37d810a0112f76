"""The builder on one machine: a repository's commit into a virtual environment, with uv.

Each environment is built once per (repository, commit), by **no person**: as root every
step (git, uv, ``postBuild``) runs as a build slot's system account (:mod:`.accounts`),
in a directory of its own under ``building/`` that no person can reach, on a disk of
``max_size`` where the machine allows (:mod:`.workspace`). When every step has passed,
everything still running as that account is killed, and root copies the result through
directory descriptors into a fresh tree of its own, read-only for everyone, checks it
(:mod:`.seal`) and renames it into ``envs/<key>``. A failed, timed-out or oversized build
leaves nothing in ``envs/``. Everyone who launches the same commit gets the same
environment; environments are evicted, least recently launched first, when all of them
together outgrow ``total_size``.

The environment is a *layered* virtual environment: a ``.pth`` file adds the packages of
a layer under it, after the environment's own, so Jupyter Server, JupyterLab, the Pangeo
stack and pangeohub's server-side parts come from the layer while the repository's
packages (installed first on the path) take precedence. Where environments are on
(``c.Environments``, the one-machine default) the layer is the current version of the
launch profile's environment, on that environment's Python, and that version is part of
the build's name: a new version means a new build of the same commit. Where they are off,
the layer is the hub's own Python and packages. A Python version other than the layer's
is refused with a message.

Every step sees the machine's proxy and certificate variables; uv's steps also run the way
the environments' builds do (:mod:`pangeohub.environments.machine`): the system's trust
store (``c.Environments.system_certs``), the machine's ``UV_*`` settings, and pip's index
settings (``pip.conf``, ``PIP_*``) read by the hub and passed as uv's variables, since the
build's account cannot read the hub account's files. The builder's own ``index_url``,
``find_links`` and ``offline`` win over the machine's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import sys
import sysconfig
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from jupyterhub.traitlets import ByteSpecification
from traitlets import Bool, Int, List, Unicode, default
from traitlets.config import LoggingConfigurable

from ..environments.machine import (
    INDEX_VARIABLES,
    network_variables,
    uv_environment,
    uv_executable,
    uv_source_args,
)
from ..environments.settings import Environments
from ..environments.versions import Version, read_version
from ..isolation import Isolation
from ..numbers import FiniteFloat
from ..parts import hub_part
from ..state import StateDirectory
from .accounts import (
    RESOLVER,
    ensure_build_account,
    kill_processes_of,
    remove_shared_files_of,
    slot_account,
)
from .image import META
from .limits import BuildCgroup, remove_stale
from .recipe import Recipe, recipe_from_json
from .run import RunAs, StepFailed, run_step
from .seal import SealError, executable_file, open_dir, seal_copy, tree_size, verify
from .spec import LaunchError, RepoSpec, is_commit
from .workspace import BuildWorkspace, disks_problem, remove_stale_builds

# Environments sealed by root's copy (seal.py) say so in their META; older ones were
# sealed where their launcher's account built them, so they are never used again.
SEAL = 2
RESOLVES_PER_USER = 2  # refs one person may have being resolved at once
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")


InUse = Callable[[], set[str]]  # the environments running (or starting) servers use


def nothing_in_use() -> set[str]:
    return set()


def env_key(url: str, commit: str, layer: Version | None = None) -> str:
    """The environment's name: readable repository name, commit, and a hash of the URL,
    of how it is sealed (so no older environment has the same name) and of the
    environment version it layers on, if any (a new version: a new build)."""
    name = re.sub(r"[^a-z0-9]+", "-", url.rstrip("/").rsplit("/", 1)[-1].lower()).strip("-")
    named = f"{url}\n{commit}\nseal {SEAL}"
    if layer is not None:
        named += f"\nlayer {layer.name} {layer.key}"
    digest = hashlib.sha256(named.encode()).hexdigest()[:10]
    return f"{name[:30] or 'repo'}-{commit[:12]}-{digest}"


def layer_of(meta: dict) -> tuple[str, str] | None:
    """The (environment, version) a built environment's ``meta`` says it layers on; None:
    on the hub's own packages."""
    layer = meta.get("layer")
    if isinstance(layer, dict) and isinstance(layer.get("name"), str):
        return layer["name"], str(layer.get("key"))
    return None


def _venv_config(python: str) -> str:
    """The ``pyvenv.cfg`` of a virtual environment's Python ("" if it has none)."""
    try:
        return (Path(python).parent.parent / "pyvenv.cfg").read_text()
    except OSError:
        return ""


def python_version(python: str) -> str:
    """``X.Y`` of a virtual environment's Python (its ``pyvenv.cfg``), else the hub's."""
    found = re.search(r"^version(?:_info)?\s*=\s*(\d+)\.(\d+)", _venv_config(python), re.M)
    return f"{found[1]}.{found[2]}" if found else f"{sys.version_info[0]}.{sys.version_info[1]}"


def includes_system_site(python: str) -> bool:
    """Whether a virtual environment's Python sees its base's site-packages (and so the
    user site, ``pip install --user``)."""
    return bool(re.search(r"^include-system-site-packages\s*=\s*true", _venv_config(python), re.M))


@dataclass(frozen=True)
class Environment:
    """A finished environment: ``path``/env (the venv), ``path``/repo (the checkout)."""

    key: str
    path: Path
    meta: dict

    @property
    def python(self) -> str:
        return str(self.path / "env" / "bin" / "python")

    @property
    def bin(self) -> str:
        return str(self.path / "env" / "bin")

    @property
    def repo(self) -> Path:
        return self.path / "repo"

    @property
    def start(self) -> str | None:
        start = self.meta.get("start")
        return str(self.repo / start) if start else None

    @property
    def layer(self) -> tuple[str, str] | None:
        """The (environment, version) it layers on; None: the hub's packages."""
        return layer_of(self.meta)


def event(phase: str, message: str, progress: int | None = None, **extra) -> dict:
    """One event of the build stream, in BinderHub's shape (``phase``, ``message``)."""
    body = {"phase": phase, "message": message, **extra}
    if progress is not None:
        body["progress"] = progress
    return body


class BinderBuilder(LoggingConfigurable):
    """Builds launched repositories' environments on this machine (c.BinderBuilder)."""

    env_root = Unicode(
        help="""Directory of the built environments (``envs/``), the builds under way
        (``building/``) and when each was last launched (``used/``). Default: as root
        /srv/pangeohub/<hub id>/binder, else <state dir>/binder.""",
    ).tag(config=True)

    @default("env_root")
    def _default_env_root(self):
        isolation = Isolation(parent=self)
        if isolation.active:
            return f"/srv/pangeohub/{isolation.hub_id}/binder"
        return str(StateDirectory.from_env().path / "binder")

    uv = Unicode(help="The uv executable. Default: the one installed with pangeohub.").tag(
        config=True
    )

    @default("uv")
    def _default_uv(self):
        return uv_executable()

    python = Unicode(
        help="""Where environments are off (``c.Environments.enabled``): the Python
        launched environments are made on; its site-packages are layered under each
        environment's own. Default: the hub's Python. Where environments are on, a launch
        is made on its profile's environment instead (its Python and packages).""",
    ).tag(config=True)

    @default("python")
    def _default_python(self):
        return sys.executable

    index_url = Unicode(
        "",
        help="""Package index uv installs from (``--index-url``), instead of the machine's.
        Empty: the machine's, as for environments (uv's ``UV_*`` variables and system-wide
        uv.toml, else pip.conf's ``index-url`` or ``PIP_INDEX_URL``), else uv's default.
        Builds verify indexes with the machine's trust store unless
        ``c.Environments.system_certs`` is off, and use its proxy variables.""",
    ).tag(config=True)

    find_links = List(
        Unicode(),
        help="""Directories or pages of wheels and sdists uv also installs from
        (``--find-links``; instead of the machine's ``UV_FIND_LINKS`` or pip's
        ``find-links``).""",
    ).tag(config=True)

    offline = Bool(
        False, help="Install only from ``find_links`` and uv's cache (``--offline``)."
    ).tag(config=True)

    build_isolation = Bool(
        True,
        help="""Build a repository's own package (pyproject.toml, setup.py) in an isolated
        environment with its declared build backend (uv's default). Off: with the build
        tools already in the hub's environment (for hubs without a package index).""",
    ).tag(config=True)

    timeout = FiniteFloat(
        1800, min=1, help="Seconds a whole build may take before it is stopped."
    ).tag(config=True)

    mem_limit = ByteSpecification(
        4 * 2**30,
        help="""Memory one build may use (all its steps together: git, uv, postBuild), held
        by a cgroup of its own when the hub runs as root on a machine with cgroups (v1 or
        v2). Past it the kernel ends the biggest process and the build fails saying it ran
        out of memory. Accepts bytes or a size like ``"4G"``; 0: no memory limit.""",
    ).tag(config=True)

    cpu_limit = FiniteFloat(
        2.0,
        min=0,
        help="""CPUs one build may use (its cgroup's CPU quota; fractions allowed). 0: no
        CPU limit. Like ``mem_limit``, only where builds get a cgroup (the hub is root).""",
    ).tag(config=True)

    max_size = Int(
        5 * 2**30,
        min=1,
        help="""Bytes one build may write and one environment (with the repository's
        files) may take. As root with loop devices each build writes on a disk of its own
        of this size, so the kernel stops it there; elsewhere the size is checked after
        each step. With ``max_builds_per_user`` it bounds what one person's builds take.""",
    ).tag(config=True)

    total_size = Int(
        50 * 2**30,
        min=1,
        help="""Bytes all environments together may take; past it the least recently
        launched ones (not in use by a running server) are removed.""",
    ).tag(config=True)

    max_builds_per_user = Int(1, min=1, help="Builds one person may have under way at once.").tag(
        config=True
    )

    max_builds = Int(
        2,
        min=1,
        help="""Builds under way on the hub at once; further ones wait their turn. As root
        each runs as its own build account (``<build_account>-1`` ...).""",
    ).tag(config=True)

    git_timeout = FiniteFloat(
        60, min=1, help="Seconds to resolve a ref (``git ls-remote``) before giving up."
    ).tag(config=True)

    build_account = Unicode(
        help="""Base name of the system accounts builds run as when the hub is root:
        ``<name>-0`` resolves refs, ``<name>-1`` to ``<name>-<max_builds>`` run one build
        each. No person's process may run as them (so it must not start with
        ``c.Isolation.account_prefix``). Default: pangeohub-build-<hub id>.""",
    ).tag(config=True)

    @default("build_account")
    def _default_build_account(self):
        return f"pangeohub-build-{Isolation(parent=self).hub_id}"

    build_disks = Bool(
        True,
        help="""As root with loop devices, give each build a loop-mounted disk of exactly
        ``max_size`` to write on (the kernel stops it there). Off, or where the machine
        has no loop devices: a plain directory, its size checked after each step.""",
    ).tag(config=True)

    # -- in-memory bookkeeping of builds under way (one hub process)
    _slots: asyncio.Queue | None = None
    _per_user: dict | None = None
    _key_locks: dict | None = None
    _active: set | None = None
    _stale_removed: asyncio.Future | None = None  # what an earlier hub process left

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._resolving: dict[str, int] = {}  # person -> refs being resolved now

    @property
    def root(self) -> Path:
        return Path(self.env_root)

    def _dirs(self) -> None:
        for path, mode in ((self.root, 0o711), (self.root / "envs", 0o755)):
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            os.chmod(path, mode)
        for name in ("building", "used"):
            (self.root / name).mkdir(mode=0o711, exist_ok=True)
            os.chmod(self.root / name, 0o711)

    def check_build_account(self) -> None:
        """Refuse (ValueError) a build account name a person's account could have."""
        isolation = Isolation(parent=self)
        if self.build_account.startswith(isolation.account_prefix) or not re.match(
            r"^[a-z][a-z0-9-]{0,28}$", self.build_account
        ):
            raise ValueError(
                f"c.BinderBuilder.build_account = {self.build_account!r} could be a person's "
                f"account (people's start with {isolation.account_prefix!r}) or is not a "
                "valid account name; choose another prefix, such as 'pangeohub-build'."
            )

    # -- environments -------------------------------------------------------

    def environment(self, key: str) -> Environment | None:
        """The finished environment ``key``, or None (never a half-built one)."""
        if not _KEY.match(key or ""):
            return None
        path = self.root / "envs" / key
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("seal") != SEAL:
            return None  # sealed by an older hub: not trusted, rebuilt under a new name
        return Environment(key, path, meta)

    def environments(self) -> list[Environment]:
        envs = self.root / "envs"
        found = (self.environment(p.name) for p in envs.iterdir()) if envs.is_dir() else ()
        return [e for e in found if e is not None]

    def mark_used(self, key: str) -> None:
        stamp = self.root / "used" / key
        stamp.touch()
        os.utime(stamp)

    def last_used(self, key: str) -> float:
        try:
            return (self.root / "used" / key).stat().st_mtime
        except OSError:
            return 0.0

    def layer_gone(self, environment: Environment) -> bool:
        """Whether the environment version ``environment`` was made on is removed (it can
        never start again: a launch now builds on the current version)."""
        layer = environment.layer
        root = hub_part(Environments, self).root_path
        return layer is not None and read_version(root, *layer) is None

    def evict(self, in_use: set[str]) -> list[str]:
        """Remove the environments whose layer is gone, then the least recently launched
        ones until all fit ``total_size``."""
        envs = sorted(self.environments(), key=lambda e: self.last_used(e.key))
        gone = {e.key for e in envs if self.layer_gone(e)}
        envs.sort(key=lambda e: e.key not in gone)  # (a stable sort) those first
        total = sum(e.meta.get("size", 0) for e in envs)
        removed = []
        for env in envs:
            if total <= self.total_size and env.key not in gone:
                break
            if env.key in in_use:
                continue
            trash = self.root / "building" / f".evicted-{env.key}-{secrets.token_hex(4)}"
            env.path.rename(trash)  # gone from envs/ at once, then deleted
            shutil.rmtree(trash, ignore_errors=True)
            (self.root / "used" / env.key).unlink(missing_ok=True)
            total -= env.meta.get("size", 0)
            removed.append(env.key)
            why = "its environment version is gone" if env.key in gone else "total_size"
            self.log.info("Evicted launched environment %s (%s)", env.key, why)
        return removed

    # -- who builds ---------------------------------------------------------

    def slot_run_as(self, slot: int) -> RunAs:
        """The account build slot ``slot`` runs as (made if needed, as root); the hub's
        own account when the hub is not root (or isolation is off)."""
        if not Isolation(parent=self).active:
            return RunAs("hub")
        self.check_build_account()
        entry = ensure_build_account(slot_account(self.build_account, slot))
        return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, self.build_sandbox(entry))

    def build_sandbox(self, account) -> object | None:
        """The sandbox a build slot's steps run in, as a person's server does
        (:meth:`pangeohub.isolation.Isolation.sandbox_for`): a private ``/tmp`` and
        ``/dev/shm``, only its own processes in view, no one's homes, clusters or cgroups,
        dropping to ``account`` itself. None when ``c.Isolation.sandbox`` is off: steps
        then drop to the account in the child (their ``TMPDIR`` is on the build's disk)."""
        isolation = Isolation(parent=self)
        return isolation.sandbox_for(account.pw_uid, account.pw_gid, read_only=self.local_inputs())

    def local_inputs(self) -> list[str]:
        """What a build reads by path that the admin or the machine named: ``find_links``
        directories and the files and directories its uv settings name (certificates,
        constraints, find-links), so a sandbox keeps them in view where it replaces
        their directory (``/tmp``)."""
        env = self.uv_environment()
        named = [*self.find_links, *(env.get(k, "") for k in ("SSL_CERT_FILE", "SSL_CERT_DIR"))]
        for name in ("UV_FIND_LINKS", "UV_CONSTRAINT"):
            named += env.get(name, "").replace(",", " ").split()
        return [path for path in named if path]

    def end_processes(self, run_as: RunAs) -> None:
        """End everything running as a build slot's account (nothing of a build outlives
        its steps: no process of it can change what root seals)."""
        if run_as.uid is not None:
            kill_processes_of(run_as.uid)

    def clear_slot(self, run_as: RunAs) -> None:
        """Nothing of an earlier build of this slot is left for the next one: no process,
        no file in the machine's shared temporary directories."""
        if run_as.uid is not None:
            kill_processes_of(run_as.uid)
            remove_shared_files_of(run_as.uid, run_as.gid)

    def check_can_build(self, username: str) -> None:
        """A 429 if ``username`` already has ``max_builds_per_user`` builds under way."""
        if (self._per_user or {}).get(username, 0) >= self.max_builds_per_user:
            raise LaunchError(
                429,
                f"You already have {self.max_builds_per_user} build(s) under way on this hub. "
                "Wait for it to finish, then launch again.",
            )

    def _git_env(self, home: str) -> dict[str, str]:
        """What every step runs with (git's, uv's, postBuild's): the machine's proxy and
        certificate variables, and nothing else of the hub's."""
        return {
            **network_variables(dict(os.environ)),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": "http:https",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "LANG": "C.UTF-8",
        }

    async def resolve(self, repo: RepoSpec, username: str = "") -> str:
        """The commit ``repo.ref`` names now (``git ls-remote``, as the resolving build
        account, never a person), or a 4xx. One person has at most ``RESOLVES_PER_USER``
        under way (each is a process on the hub's machine until ``git_timeout``)."""
        resolving = self._resolving.get(username, 0)
        if resolving >= RESOLVES_PER_USER:
            raise LaunchError(
                429,
                f"You already have {resolving} launches waiting for their repository to "
                "answer. Wait for them to start or fail, then launch again.",
            )
        self._resolving[username] = resolving + 1
        try:
            return await self._resolve(repo)
        finally:
            self._resolving[username] -= 1
            if not self._resolving[username]:
                del self._resolving[username]

    async def _resolve(self, repo: RepoSpec) -> str:
        run_as = await asyncio.to_thread(self.slot_run_as, RESOLVER)
        lines: list[str] = []
        deadline = time.monotonic() + self.git_timeout
        try:
            async for line in run_step(
                ["git", "ls-remote", "--", repo.url],
                run_as=run_as,
                cwd="/",
                env=self._git_env("/nonexistent"),
                deadline=deadline,
                what="Fetching the repository's refs",
                timeout_hint=f"no answer within {self.git_timeout:g} s",
            ):
                lines.append(line)
        except StepFailed as failure:
            raise LaunchError(
                422,
                f"The repository {repo.url} could not be fetched "
                f"({failure.line[:200] or failure.message}). Check that the address is "
                "right and that the repository is public.",
            ) from None
        refs = {}
        for line in lines:
            sha, _, name = line.partition("\t")
            refs[name.strip()] = sha.strip()
        if is_commit(repo.ref):
            return repo.ref
        for name in (
            f"refs/tags/{repo.ref}^{{}}",
            f"refs/tags/{repo.ref}",
            f"refs/heads/{repo.ref}",
        ):
            if name in refs:
                return refs[name]
        if repo.ref in refs:  # HEAD, or a full refs/... name
            return refs[repo.ref]
        raise LaunchError(
            404,
            f"The repository {repo.url} has no branch or tag {repo.ref!r}. Check the name, "
            "or use a full 40-character commit.",
        )

    # -- building -----------------------------------------------------------

    def _bookkeeping(self) -> None:
        if self._key_locks is None:
            self._key_locks, self._per_user, self._active = {}, {}, set()
            self._slots = asyncio.Queue()
            for slot in range(1, self.max_builds + 1):
                self._slots.put_nowait(slot)

    async def build(
        self,
        repo: RepoSpec,
        commit: str,
        username: str,
        in_use: InUse = nothing_in_use,
        layer: Version | None = None,
    ) -> AsyncIterator[dict]:
        """Events of building (or reusing) ``repo`` at ``commit``; the last one is
        ``built`` (with ``environment``) or ``failed`` (with ``message`` and ``line``).
        ``in_use``: the environments running servers use, which are never removed.
        ``layer``: the environment version it is made on (None: the hub's packages)."""
        key = env_key(repo.url, commit, layer)
        self._bookkeeping()
        lock = self._key_locks.setdefault(key, asyncio.Lock())
        if lock.locked():
            yield event("waiting", "Another launch is building this commit; waiting for it.", 15)
        async with lock:
            found = self.environment(key)
            if found is not None:
                yield event(
                    "built",
                    f"Reusing the environment built for commit {commit[:12]} (no build needed).",
                    60,
                    environment=key,
                    reused=True,
                )
                return
            try:
                self.check_can_build(username)
            except LaunchError as refused:  # another of theirs started since the check
                yield event("failed", refused.message, 100, line="")
                return
            self._per_user[username] = self._per_user.get(username, 0) + 1
            try:
                if self._slots.empty():
                    yield event("waiting", "Waiting for a free build slot on this hub.", 15)
                slot = await self._slots.get()
                try:
                    build = self._build(repo, commit, key, username, slot, in_use, layer)
                    async for item in build:
                        yield item
                finally:
                    self._slots.put_nowait(slot)
            finally:
                self._per_user[username] -= 1
                if not self._per_user[username]:
                    del self._per_user[username]

    def _remove_stale(self, in_use: set[str]) -> None:
        """The builds a stopped or killed hub process left (none of this one's yet), and
        environments an older hub sealed that no running server uses (``in_use``)."""
        try:
            self._dirs()
            remove_stale_builds(self.root / "building", set())
            self.remove_unsealed(in_use)
        except OSError as error:  # never in the way of building
            self.log.warning("Could not remove what earlier builds left: %s", error)

    def remove_unsealed(self, in_use: set[str]) -> list[str]:
        """Remove what is in ``envs/`` but not a sealed environment (an older hub's, or
        broken), unless a running server uses it."""
        removed = []
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.root / "envs"):
                if entry.name in in_use or self.environment(entry.name) is not None:
                    continue
                trash = self.root / "building" / f".evicted-{entry.name}-{secrets.token_hex(4)}"
                os.rename(entry.path, trash)
                shutil.rmtree(trash, ignore_errors=True)
                (self.root / "used" / entry.name).unlink(missing_ok=True)
                removed.append(entry.name)
                self.log.info("Removed %s: not sealed by this hub's builder", entry.name)
        return removed

    def _prepare(self, key: str, slot: int) -> BuildWorkspace:
        """The slot's account (nothing of an earlier build still running as it) and the
        build's directories."""
        self._dirs()
        run_as = self.slot_run_as(slot)
        self.clear_slot(run_as)
        use_disk = self.build_disks and run_as.uid is not None and disks_problem() is None
        workspace = BuildWorkspace(
            self.root / "building", key, run_as, self.max_size if use_disk else None
        )
        self._active.add(workspace.dir.name)
        try:
            workspace.create()
        except BaseException:
            self._discard(workspace)
            raise
        return workspace

    def _discard(self, workspace: BuildWorkspace) -> None:
        self.clear_slot(workspace.run_as)
        workspace.remove()
        self._active.discard(workspace.dir.name)

    async def _build(
        self,
        repo: RepoSpec,
        commit: str,
        key: str,
        username: str,
        slot: int,
        in_use: InUse,
        layer: Version | None,
    ):
        started = time.monotonic()
        deadline = started + self.timeout
        if self._stale_removed is None:  # once per hub process, before its first build
            self._stale_removed = asyncio.ensure_future(
                asyncio.to_thread(self._remove_stale, in_use())
            )
        await self._stale_removed
        workspace = await asyncio.to_thread(self._prepare, key, slot)
        limits = BuildCgroup.for_build(self, workspace.dir.name, self.mem_limit, self.cpu_limit)
        log: list[str] = []
        step_name = "Preparing"
        try:
            await asyncio.to_thread(remove_stale, self, self.root / "building")
            await asyncio.to_thread(limits.create)
            result: dict = {}
            steps = self._steps(repo, commit, workspace, deadline, log, result, limits, layer)
            async for item in steps:
                if item["phase"] != "log":
                    step_name = item["message"]
                yield item
            step_name = "Sealing the environment"
            size = await asyncio.to_thread(
                self._seal, workspace, key, repo, commit, result["recipe"], layer
            )
            elapsed = time.monotonic() - started
            self.log.info("Built environment %s for %s in %.1f s", key, username, elapsed)
            yield event(
                "built",
                f"Built the environment in {elapsed:.1f} s ({size / 2**20:.0f} MiB).",
                60,
                environment=key,
                reused=False,
                seconds=round(elapsed, 2),
            )
            await asyncio.to_thread(self.evict, {key} | in_use())
        except (StepFailed, SealError) as failure:
            step = step_name.rstrip(".")
            message = str(failure) if isinstance(failure, SealError) else failure.message
            line = getattr(failure, "line", "")
            if not message.startswith(step):  # e.g. a limit: say which step it stopped
                message = f"{step}: {message}"
            self.log.warning("Build of %s for %s failed: %s", key, username, message)
            await asyncio.to_thread(limits.remove)  # as the build's files: gone before
            await asyncio.to_thread(self._discard, workspace)  # anyone hears
            yield event("failed", message, 100, line=line, log=log[-200:])
        finally:
            await asyncio.to_thread(limits.remove)
            if workspace.dir.name in self._active:
                await asyncio.to_thread(self._discard, workspace)

    def uv_environment(self) -> dict[str, str]:
        """What uv's steps add to every step's variables: the machine's uv and pip
        settings and its trust store (``c.Environments.system_certs``), read here by the
        hub; the machine's index gives way to ``index_url``."""
        system_certs = hub_part(Environments, self).system_certs
        env = uv_environment(dict(os.environ), system_certs=system_certs, other_account=True)
        if self.index_url:
            for name in INDEX_VARIABLES:
                env.pop(name, None)
        return env

    def _uv_args(self) -> list[str]:
        return uv_source_args(self.index_url, self.find_links, self.offline)

    def _limit_messages(self) -> tuple[str, str]:
        out_of_memory = (
            f"ran out of memory: a build may use {self.mem_limit / 2**20:.0f} MiB "
            "(c.BinderBuilder.mem_limit). Make the build need less memory, or ask a hub "
            "admin for a higher limit."
        )
        out_of_disk = (
            f"ran out of disk space: a build may write {self.max_size / 2**20:.0f} MiB "
            "(c.BinderBuilder.max_size). Make the environment smaller, or ask a hub admin "
            "for a higher limit."
        )
        return out_of_memory, out_of_disk

    async def _steps(
        self, repo, commit, workspace: BuildWorkspace, deadline, log, result, limits, layer
    ):
        work, run_as = workspace.work, workspace.run_as
        checkout, venv = work / "repo", work / "env"
        hint = f"the build is limited to {self.timeout:g} s (c.BinderBuilder.timeout)"
        env = self._git_env(str(work / "home"))
        env.update(
            UV_CACHE_DIR=str(work / "cache"), TMPDIR=str(work / "tmp"), UV_NO_PROGRESS="1",
            NO_COLOR="1",
        )  # fmt: skip
        uv_env = {**self.uv_environment(), **env}  # the build's own cache and home win
        out_of_memory, out_of_disk = self._limit_messages()

        async def step(argv, what, cwd=work, extra_env=None, quiet=False):
            base = uv_env if argv[0] == self.uv else env
            try:
                async for line in run_step(
                    argv,
                    run_as=run_as,
                    cwd=str(cwd),
                    env={**base, **(extra_env or {})},
                    deadline=deadline,
                    what=what,
                    timeout_hint=hint,
                    limits=limits,
                ):
                    if quiet:
                        yield line
                        continue
                    log.append(line)
                    yield event("log", line)
            except StepFailed as failure:
                if limits.ran_out_of_memory():
                    raise StepFailed(f"{what} {out_of_memory}", failure.line) from None
                if await asyncio.to_thread(workspace.full):
                    raise StepFailed(f"{what} {out_of_disk}", failure.line) from None
                raise
            finally:
                await asyncio.to_thread(limits.end_step)  # nothing of a step outlives it
                await asyncio.to_thread(self.end_processes, run_as)
            if limits.ran_out_of_memory():  # a process killed that the step did not mind
                raise StepFailed(f"{what} {out_of_memory}", log[-1] if log else "")
            size = await asyncio.to_thread(tree_size, work)
            if size > self.max_size:
                raise StepFailed(
                    f"the environment grew past {self.max_size / 2**20:.0f} MiB "
                    "(c.BinderBuilder.max_size); make it smaller.",
                    f"{size / 2**20:.0f} MiB after: {what}",
                )

        yield event("fetching", f"Fetching {repo.url} at commit {commit[:12]}.", 5)
        async for item in step(
            ["git", "clone", "--no-checkout", "--quiet", "--", repo.url, str(checkout)],
            "Fetching the repository",
        ):
            yield item
        async for item in step(
            ["git", "-c", "advice.detachedHead=false", "checkout", "--quiet", commit, "--"],
            f"Checking out commit {commit[:12]}",
            cwd=checkout,
        ):
            yield item
        recipe = await self._read_recipe(step, checkout)
        files = ", ".join(recipe.files()) or "no environment files (the hub's own packages)"
        yield event("building", f"Building from {files}.", 20)
        python = layer.python if layer is not None else self.python
        self._check_python(recipe, python)
        async for item in self._make_environment(step, venv, layer):
            yield item
        async for item in self._install(step, recipe, checkout, venv, log):
            yield item
        async for item in self._post_build(step, recipe, checkout, venv, env["PATH"]):
            yield item
        result["recipe"] = recipe

    async def _make_environment(self, step, venv: Path, layer: Version | None):
        """The virtual environment with the layer's packages under it: the environment
        version's (on its Python, seeing the user site as it does), else the hub's."""
        if layer is None:
            python, what, pth_name = self.python, "Layering the hub's packages", "_pangeohub_hub"
            paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        else:
            python, pth_name = layer.python, "_pangeohub_environment"
            what = f"Layering the environment {layer.name} (version {layer.key})"
            paths = [str(layer.site_packages)]
        making = [self.uv, "venv", "--relocatable", "--quiet", "--python", python]
        if layer is not None and includes_system_site(layer.python):
            making.append("--system-site-packages")  # `pip install --user`, as in the layer
        async for item in step([*making, str(venv)], "Making the virtual environment"):
            yield item
        pth = "".join(f"import site; site.addsitedir({p!r})\n" for p in paths)
        write_pth = (
            "import site, sys; open(site.getsitepackages()[0] + '/' + sys.argv[1], 'w')"
            ".write(sys.argv[2])"
        )
        argv = [str(venv / "bin" / "python"), "-c", write_pth, f"{pth_name}.pth", pth]
        async for item in step(argv, what):
            yield item

    async def _install(self, step, recipe: Recipe, checkout: Path, venv: Path, log: list):
        """What the repository's files ask uv to install, and the repository itself."""
        out_of_memory, out_of_disk = self._limit_messages()
        install = [self.uv, "pip", "install", "--python", str(venv / "bin" / "python")]
        install += self._uv_args()
        if recipe.conda_requirements:
            names = ", ".join(recipe.conda_requirements)
            yield event("building", f"Installing environment.yml's dependencies: {names}.", 30)
            try:
                async for item in step(
                    [*install, *recipe.conda_requirements],
                    "Installing environment.yml's dependencies",
                    cwd=checkout,
                ):
                    yield item
            except StepFailed as failure:
                if failure.message.endswith((out_of_memory, out_of_disk)):
                    raise
                missing = [
                    r
                    for r in recipe.conda_requirements
                    if re.split(r"[=<>!]", r)[0].lower() in " ".join(log[-30:]).lower()
                ]
                raise StepFailed(
                    f"{', '.join(missing) or names} could not be installed from the Python "
                    "package index. This hub builds environments with uv, not conda: a "
                    "package only conda has must be replaced (or moved under pip:) in "
                    "environment.yml.",
                    failure.line,
                ) from None
        if recipe.pip_requirements:
            yield event("building", "Installing environment.yml's pip: section.", 35)
            async for item in step(
                [*install, *recipe.pip_requirements],
                "Installing environment.yml's pip: section",
                cwd=checkout,
            ):
                yield item
        if recipe.requirements:
            yield event("building", f"Installing {recipe.requirements}.", 40)
            async for item in step(
                [*install, "-r", str(checkout / recipe.requirements)],
                f"Installing {recipe.requirements}",
                cwd=checkout,
            ):
                yield item
        if recipe.install_project:
            yield event("building", "Installing the repository's own package.", 45)
            extra = [] if self.build_isolation else ["--no-build-isolation"]
            async for item in step(
                [*install, *extra, str(checkout)], "Installing the repository's package", checkout
            ):
                yield item

    async def _post_build(self, step, recipe: Recipe, checkout: Path, venv: Path, path: str):
        """The repository's ``postBuild``, with the environment active."""
        if recipe.post_build:
            yield event("building", f"Running {recipe.post_build}.", 50)
            script = checkout / recipe.post_build
            activated = {
                "PATH": f"{venv / 'bin'}{os.pathsep}{path}",
                "VIRTUAL_ENV": str(venv),
                "REPO_DIR": str(checkout),
            }
            async for item in step(
                ["/bin/sh", "-c", 'chmod u+x "$1" && exec "$1"', "postBuild", str(script)],
                f"Running {recipe.post_build}",
                cwd=checkout,
                extra_env=activated,
            ):
                yield item

    async def _read_recipe(self, step, checkout: Path) -> Recipe:
        """The repository's recipe, read by the build's account (a child of the hub's
        Python), never by root: the checkout is the build's to change."""
        argv = [sys.executable, "-I", "-m", "pangeohub.binder.recipe", str(checkout)]
        lines = [line async for line in step(argv, "Reading the repository's files",
                                             cwd=checkout, quiet=True)]  # fmt: skip
        try:
            return recipe_from_json(lines[-1] if lines else "{}")
        except LaunchError as error:
            raise StepFailed(error.message) from None
        except ValueError:
            raise StepFailed("The repository's files could not be read.", lines[-1][:200]) from None

    def _check_python(self, recipe: Recipe, python: str) -> None:
        ours = python_version(python)
        if recipe.python and recipe.python not in (ours, ours.split(".")[0]):
            raise StepFailed(
                f"{recipe.python_from} asks for Python {recipe.python}; this hub builds "
                f"environments on Python {ours} only. Ask for python-{ours} "
                "(or remove the line) and launch again.",
                f"python {recipe.python}",
            )

    def _seal(
        self,
        workspace: BuildWorkspace,
        key: str,
        repo: RepoSpec,
        commit: str,
        recipe: Recipe,
        layer: Version | None = None,
    ) -> int:
        """Root's own copy of the finished build, read-only for all, checked, and moved
        into ``envs/`` in one step (see :mod:`.seal`)."""
        self.end_processes(workspace.run_as)  # nothing of the build runs while root copies
        owner = workspace.run_as.uid if workspace.run_as.uid is not None else os.geteuid()
        sealed = workspace.sealed
        size = seal_copy(workspace.work, ["env", "repo"], sealed, owner=owner, limit=self.max_size)
        if recipe.start:
            executable_file(sealed, f"repo/{recipe.start}")
        target = self.root / "envs" / key
        verify(sealed, str(target), trusted_uids={0, os.geteuid()})
        meta = {
            "repository": repo.url,
            "ref": repo.ref,
            "commit": commit,
            "size": size,
            "built": time.time(),
            "start": recipe.start,
            "files": recipe.files(),
            "seal": SEAL,
        }
        if layer is not None:
            meta["layer"] = {"name": layer.name, "key": layer.key}
        fd = open_dir(sealed)
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            with os.fdopen(os.open(META, flags, 0o644, dir_fd=fd), "w") as f:
                f.write(json.dumps(meta, indent=1) + "\n")
            os.fchmod(fd, 0o755)
        finally:
            os.close(fd)
        os.rename(sealed, target)  # atomic: the environment appears whole or not at all
        self.mark_used(key)
        return size
