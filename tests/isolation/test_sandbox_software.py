"""A hub installed under /tmp (a checkout there, as CI may make): each sandbox has its own
/tmp, so the hub's Python and pangeohub, which servers and Dask workers run, are bound back
into it, read-only."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from pangeohub.isolation import sandbox as sandbox_module
from pangeohub.isolation.sandbox import Sandbox, sandbox_problem

pytestmark = pytest.mark.skipif(sandbox_problem() is not None, reason=f"{sandbox_problem()}")

REAL = sandbox_module.hub_software()
SCRIPT = """
import json, os, sys
tool = sys.argv[1]
out = {"tmp": sorted(os.listdir("/tmp")), "read": open(tool).read()}
try:
    open(tool, "a").write("changed")
    out["write"] = "written"
except OSError as error:
    out["write"] = error.strerror
print(json.dumps(out))
"""


@pytest.fixture
def software(monkeypatch):
    top = Path(tempfile.mkdtemp(prefix="pangeohub-software-", dir="/tmp"))
    (top / "venv" / "bin").mkdir(parents=True)
    (top / "venv" / "bin" / "tool").write_text("the hub's\n")
    for path in (top, top / "venv", top / "venv" / "bin"):
        path.chmod(0o755)
    (top / "venv" / "bin" / "tool").chmod(0o644)
    # this Python's own (REAL, where it lies under /tmp) and a stand-in of the hub's
    monkeypatch.setattr(sandbox_module, "hub_software", lambda: (*REAL, str(top / "venv")))
    yield top
    shutil.rmtree(top, ignore_errors=True)


def test_the_hubs_software_under_tmp_is_seen_read_only_and_alone(software):
    nobody = Sandbox(65534, 65534, tmp_size=8 * 2**20)
    tool = software / "venv" / "bin" / "tool"
    done = subprocess.run(
        nobody.wrap([sys.executable, "-c", SCRIPT, str(tool)]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    seen = json.loads(done.stdout)
    assert seen["read"] == "the hub's\n"
    assert seen["write"] in ("Read-only file system", "Permission denied")
    hubs = {Path(p).relative_to("/tmp").parts[0] for p in REAL if p.startswith("/tmp/")}
    assert set(seen["tmp"]) == {software.name, *hubs}  # nothing else of the machine's /tmp
    assert tool.read_text() == "the hub's\n"
