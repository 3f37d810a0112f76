"""The `pangeohub-admin` commands docs/operate/ shows, for the tests to run as written."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.hubprocess import REPO

PAGES = REPO / "docs" / "operate"
_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def doc_commands(page: str | None = None) -> list[list[str]]:
    """Every `pangeohub-admin ...` line of the pages' bash blocks, as arguments."""
    paths = [PAGES / page] if page else sorted(PAGES.glob("*.md"))
    found = []
    for path in paths:
        for block in _BLOCK.findall(Path(path).read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#", 1)[0].strip()
                words = shlex.split(line)
                if words and words[0].endswith("pangeohub-admin"):
                    found.append(words[1:])
    return found


def doc_command(page: str, command: str, paths: dict[str, str] | None = None) -> list[str]:
    """The first `pangeohub-admin COMMAND ...` of ``page``, its paths moved to the test's."""
    for words in doc_commands(page):
        if words[0] == command:
            moved = []
            for word in words:
                for prefix, replacement in (paths or {}).items():
                    if word.startswith(prefix):
                        word = replacement + word[len(prefix) :]
                moved.append(word)
            return moved
    raise AssertionError(f"docs/operate/{page} shows no `pangeohub-admin {command}`")
