"""Building an environment's current version with uv, once, then sealing it.

A build runs as the hub's account (the requirements are the admin's), in a directory of
its own under ``<root>/.building``, and appears under ``<root>/<name>/<version>`` only
when every step passed and it is sealed: a failed build leaves nothing a server could
start in. One build per environment at a time, also across processes (the hub and the
admin's ``pangeohub-environments`` command share a lock file).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from .machine import uv_environment, uv_source_args
from .seal import seal, unseal_and_remove
from .settings import Environments
from .spec import PACKAGE_DIR, SOURCE_DIR, EnvironmentSpec, pangeohub_digest
from .versions import META, TRASH, Version, read_version, remove_unused

Progress = Callable[[str], None]
_packed: dict[str, Path] = {}  # pangeohub's wheel by digest of its code, packed here


class BuildFailed(Exception):
    """A build failed: ``message`` says which step and why, ``detail`` is uv's own words."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.message, self.detail = message, detail


async def run(argv: list[str], env: dict, deadline: float, what: str, progress: Progress) -> str:
    """Run ``argv``, passing its output lines to ``progress``; its whole output, or
    :class:`BuildFailed` (with its last lines) if it fails or outlives ``deadline``."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    lines: list[str] = []
    tail: deque[str] = deque(maxlen=8)

    async def read():
        async for raw in process.stdout:
            line = raw.decode(errors="replace").rstrip()
            lines.append(line)
            if line:
                tail.append(line)
                progress(line)
        return await process.wait()

    try:
        code = await asyncio.wait_for(read(), max(deadline - time.monotonic(), 0.1))
    except TimeoutError:
        raise BuildFailed(
            f"{what} took too long (c.Environments.build_timeout).", "\n".join(tail)
        ) from None
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    if code != 0:
        raise BuildFailed(f"{what} failed (exit status {code}).", "\n".join(tail))
    return "\n".join(lines)


def add_user_site_hook(python: str) -> Path:
    """The user site (``pip install --user``) found without restarting Python
    (:mod:`pangeohub.environments.user_site`, as ``_pangeohub_user_site``); the
    environment's site-packages."""
    done = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    site_packages = Path(done.stdout.strip())
    shutil.copy(Path(__file__).with_name("user_site.py"), site_packages / "_pangeohub_user_site.py")
    (site_packages / "_pangeohub_user_site.pth").write_text("import _pangeohub_user_site\n")
    return site_packages


class Builder:
    """Builds, finds and removes the versions of the declared environments."""

    def __init__(self, settings: Environments):
        self.settings = settings
        self.log = settings.log
        self.root = settings.root_path
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: dict[str, asyncio.Future] = {}  # builds under way, by version
        self._listeners: dict[str, list[Progress]] = {}  # who hears each one's progress

    # -- what exists ------------------------------------------------------------

    def spec(self, name: str) -> EnvironmentSpec:
        return EnvironmentSpec.of(self.settings, name)

    def current(self, name: str) -> Version | None:
        """The version of ``name`` its declaration makes now, if it is built."""
        return read_version(self.root, name, self.spec(name).key())

    def remove_unused(self, name: str, in_use: set[str]) -> list[str]:
        """Remove the versions of ``name`` no server runs and that are not current."""
        keep = set(in_use) | {self.spec(name).key()}
        removed = remove_unused(self.root, name, keep)
        for key in removed:
            self.log.info("Removed version %s of environment %s (no server runs it)", key, name)
        return removed

    # -- building ---------------------------------------------------------------

    async def ensure(self, name: str, progress: Progress | None = None) -> Version:
        """The current version of ``name``, built first if it is not yet.

        The build is a task of its own: a start that gives up waiting (its timeout) does
        not stop it, and the next start finds it built, or waits for it with its own
        progress."""
        spec = self.spec(name)
        key = spec.key()
        found = read_version(self.root, name, key)
        if found is not None:
            return found
        listeners = self._listeners.setdefault(key, [])
        if progress is not None:
            listeners.append(progress)
        task = self._tasks.get(key)
        if task is None:
            task = self._tasks[key] = asyncio.ensure_future(self._ensure(spec, key, listeners))
            task.add_done_callback(lambda _: self._forget(key))
        try:
            return await asyncio.shield(task)
        finally:
            if progress is not None and progress in listeners:
                listeners.remove(progress)

    def _forget(self, key: str) -> None:
        self._tasks.pop(key, None)
        self._listeners.pop(key, None)

    async def _ensure(self, spec: EnvironmentSpec, key: str, listeners: list) -> Version:
        def progress(line: str) -> None:
            for listener in list(listeners):
                listener(line)

        async with self._locks.setdefault(spec.name, asyncio.Lock()):
            await asyncio.to_thread(self._dirs, spec.name)
            lock_file = await asyncio.to_thread(self._lock_across_processes, spec.name)
            try:
                found = read_version(self.root, spec.name, key)  # built while we waited
                if found is not None:
                    return found
                return await self._build(spec, key, progress)
            finally:
                lock_file.close()

    def _dirs(self, name: str) -> None:
        for path, mode in ((self.root, 0o755), (self.root / name, 0o755)):
            path.mkdir(mode=mode, parents=True, exist_ok=True)
            if path.is_symlink() or not path.is_dir():
                raise BuildFailed(f"{path} is not a directory; the environments need one.")
            os.chmod(path, mode)
        for hidden in (".building", TRASH):
            (self.root / hidden).mkdir(mode=0o700, exist_ok=True)

    def _lock_across_processes(self, name: str):
        handle = open(self.root / ".building" / f"{name}.lock", "a")  # noqa: SIM115
        fcntl.flock(handle, fcntl.LOCK_EX)
        return handle

    def _uv_args(self) -> list[str]:
        settings = self.settings
        args = ["--cache-dir", settings.cache_dir] if settings.cache_dir else []
        args += uv_source_args(settings.index_url, settings.find_links, settings.offline)
        if settings.compile_bytecode:
            args.append("--compile-bytecode")
        return args

    def _env(self) -> dict[str, str]:
        env = uv_environment(dict(os.environ), system_certs=self.settings.system_certs)
        env.update(
            PATH=os.environ.get("PATH", os.defpath),
            HOME=os.environ.get("HOME", "/root"),
            LANG="C.UTF-8",
            NO_COLOR="1",
            UV_NO_PROGRESS="1",
        )
        return env

    async def _build(self, spec: EnvironmentSpec, key: str, progress: Progress) -> Version:
        settings = self.settings
        started = time.monotonic()
        deadline = started + settings.build_timeout
        work = self.root / ".building" / f"{spec.name}-{key}-{secrets.token_hex(4)}"
        work.mkdir(mode=0o700)
        venv = work / "env"
        python = str(venv / "bin" / "python")
        env = self._env()
        uv = settings.uv
        self.log.info("Building environment %s, version %s", spec.name, key)
        progress(f"Building environment {spec.name} (version {key}) with uv.")
        try:
            venv_args = ["venv", "--quiet", "--relocatable", "--python", spec.python]
            if sys.prefix != sys.base_prefix:  # the base's site-packages are not the hub's
                venv_args.append("--system-site-packages")  # so `pip install --user` works
            making = [uv, *venv_args, str(venv)]
            await run(making, env, deadline, "Making the environment", progress)
            with tempfile.TemporaryDirectory(prefix="pangeohub-env-") as scratch:
                overrides = Path(scratch) / "overrides.txt"
                overrides.write_text("\n".join(spec.overrides) + "\n")
                install = [uv, "pip", "install", "--python", python, *self._uv_args()]
                requirements = [a for p in spec.requirements for a in ("-r", str(p))]
                constraints = [a for p in spec.constraints for a in ("--constraint", str(p))]
                added = spec.added_packages()
                if added:
                    progress(f"Also installing what the admin added: {', '.join(added)}.")
                await run(
                    [
                        *install,
                        *requirements,
                        *spec.server_packages,
                        *added,
                        "--override",
                        str(overrides),
                        *constraints,
                    ],
                    env,
                    deadline,
                    "Installing the environment's packages",
                    progress,
                )
                progress("Installing pangeohub's server-side parts.")
                wheel = await self._pangeohub_wheel(Path(scratch), deadline, progress)
                await run(
                    [*install, "--no-deps", "--reinstall-package", "pangeohub", wheel],
                    env,
                    deadline,
                    "Installing pangeohub's server-side parts",
                    progress,
                )
            site_packages = await asyncio.to_thread(add_user_site_hook, python)
            listing = await run(
                [uv, "pip", "list", "--python", python, "--format", "json", "--quiet"],
                env,
                deadline,
                "Listing the environment's packages",
                lambda line: None,
            )
            packages = [{"name": p["name"], "version": p["version"]} for p in json.loads(listing)]
            seconds = time.monotonic() - started
            meta = {
                "name": spec.name,
                "version": key,
                "description": spec.description,
                "built": time.time(),
                "seconds": round(seconds, 1),
                "python": spec.python,
                "site_packages": str(site_packages.relative_to(work)),
                "requirements": [str(p) for p in spec.requirements],
                "added": spec.added_packages(),
                "packages": sorted(packages, key=lambda p: p["name"].lower()),
            }
            (work / META).write_text(json.dumps(meta, indent=1) + "\n")
            version = await asyncio.to_thread(self._publish, work, spec.name, key)
        except BaseException:
            await asyncio.to_thread(unseal_and_remove, work)
            raise
        self.log.info("Built environment %s version %s in %.1f s", spec.name, key, seconds)
        progress(f"Built environment {spec.name} (version {key}) in {seconds:.0f} s.")
        return version

    def _publish(self, work: Path, name: str, key: str) -> Version:
        """Seal the build and move it into place (atomic: whole or not at all)."""
        seal(work)
        target = self.root / name / key
        if os.geteuid() != 0:
            os.chmod(work, 0o755)  # moving a directory needs it writable (not as root)
        os.rename(work, target)
        os.chmod(target, 0o555)
        version = read_version(self.root, name, key)
        if version is None:
            raise BuildFailed(f"The build of {name} did not leave a readable environment.")
        return version

    async def _pangeohub_wheel(self, scratch: Path, deadline: float, progress: Progress) -> str:
        """pangeohub as a wheel, built once per version of its code from the hub's own
        copy (without its dependencies: those are the hub's), or from the index when the
        hub was installed from a wheel."""
        if not (SOURCE_DIR / "setup.cfg").is_file():
            import pangeohub

            return f"pangeohub=={pangeohub.__version__}"
        digest = pangeohub_digest()[:16]
        wheels = self.root / ".building" / "wheels" / digest
        found = sorted(wheels.glob("pangeohub-*.whl")) if wheels.is_dir() else []
        if found:
            return str(found[0])
        packed = _packed.get(digest)  # by this process, for another root
        if packed is not None and packed.is_file():
            wheels.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copy(packed, wheels / packed.name)
            return str(wheels / packed.name)
        source = scratch / "source"
        source.mkdir()
        for name in ("setup.cfg", "pyproject.toml", "README.md"):
            if (SOURCE_DIR / name).is_file():
                shutil.copy(SOURCE_DIR / name, source / name)
        shutil.copytree(
            PACKAGE_DIR, source / "pangeohub", ignore=shutil.ignore_patterns("__pycache__")
        )
        out = scratch / "wheel"
        await run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "--no-build-isolation",
                "--no-index",
                "--wheel-dir",
                str(out),
                str(source),
            ],
            {**os.environ, "PIP_NO_INPUT": "1"},
            deadline,
            "Packing pangeohub's server-side parts",
            progress,
        )
        wheels.mkdir(mode=0o700, parents=True, exist_ok=True)
        built = next(out.glob("pangeohub-*.whl"))
        shutil.copy(built, wheels / built.name)
        _packed[digest] = wheels / built.name
        return str(wheels / built.name)
