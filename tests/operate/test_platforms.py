"""`make setup` on the platforms docs/operate/platforms.md lists: the system's Python
where it is 3.11 or newer, else one installed with uv where every account can run it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.hubprocess import REPO


def setup_plan(tmp_path, python_version: str, **variables) -> str:
    """What `make setup` would run (dry run) on a machine whose python3 is that version."""
    fake = tmp_path / "python3"
    fake.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -c ]; then exec {sys.executable} -c "import sys; '
        f"sys.version_info = {tuple(map(int, python_version.split('.')))}; "
        '$(printf %s "$2" | sed "s/import sys; //")"; fi\n'
    )
    fake.chmod(0o755)
    arguments = [f"{k}={v}" for k, v in {"SYSTEM_PYTHON": fake, **variables}.items()]
    result = subprocess.run(
        ["make", "-C", str(REPO), "-n", "-B", "setup", *arguments],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def test_an_old_system_python_gets_one_from_uv(tmp_path):
    plan = setup_plan(tmp_path, "3.10.12", PYTHON_HOME=tmp_path / "py")
    assert f"UV_PYTHON_INSTALL_DIR={tmp_path}/py/versions" in plan
    assert "uv python install 3.12" in plan
    assert f"{tmp_path}/py/bin/python3 -m venv .venv" in plan
    assert f"chmod -R a+rX {tmp_path}/py" in plan  # every account runs the servers' Python


def test_a_recent_system_python_is_used_as_it_is(tmp_path):
    for version in ("3.11.2", "3.12.3", "3.13.5"):
        plan = setup_plan(tmp_path, version)
        assert "uv python install" not in plan
        assert f"{tmp_path}/python3 -m venv .venv" in plan


def test_as_root_the_python_is_not_under_root(tmp_path):
    plan = setup_plan(tmp_path, "3.10.12")
    if os.geteuid() == 0:
        assert "/opt/pangeohub/python/bin/python3 -m venv .venv" in plan
    else:
        assert f"{os.path.expanduser('~')}/.local/share/pangeohub/python" in plan
