"""A Git repository made by the test and served over dumb HTTP on 127.0.0.1, and a tiny
wheel uv installs from a local directory: launches need no external network."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@contextlib.contextmanager
def readable_wheels(prefix: str, name: str, version: str, source: str):
    """A directory holding ``make_wheel``'s wheel, readable by people's and build accounts
    (pytest's own directories are root's alone); removed at the end."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(directory, 0o755)
    make_wheel(directory, name, version, source)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def make_wheel(directory: Path, name: str, version: str, source: str) -> Path:
    """A pure-Python wheel of one module ``name`` (what uv installs, built by hand)."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": source,
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def git(*args: str, cwd: Path) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)
    return done.stdout.decode().strip()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class ServedRepos:
    """Bare repositories under ``root/<org>/<name>.git`` and ``root/<org>/<name>``, served
    by a static HTTP server (Git's dumb protocol, after ``git update-server-info``)."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def publish(
        self, org: str, name: str, files: dict[str, str | bytes], branch: str = "main"
    ) -> str:
        """Commit ``files`` (text, or bytes) on ``branch`` of ``org/name`` and publish it;
        the commit."""
        work = self.root.parent / "work" / org / name
        bare = self.root / org / name
        if not work.exists():
            work.mkdir(parents=True)
            git("init", "-q", "-b", "main", cwd=work)
            bare.parent.mkdir(parents=True, exist_ok=True)
            git("init", "-q", "--bare", str(bare), cwd=work)
            git("remote", "add", "origin", str(bare), cwd=work)
        git("checkout", "-q", "-B", branch, cwd=work)
        for path, text in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(text, bytes):
                target.write_bytes(text)
                continue
            target.write_text(text)
            if text.startswith("#!"):
                target.chmod(0o755)
        git("add", "-A", cwd=work)
        git("commit", "-q", "--allow-empty", "-m", f"update {branch}", cwd=work)
        git("push", "-q", "-f", "origin", branch, cwd=work)
        git("checkout", "-q", "main", cwd=work) if branch != "main" else None
        git("update-server-info", cwd=bare)
        return git("rev-parse", branch, cwd=work)
