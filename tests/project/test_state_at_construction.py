"""pangeohub's objects make their state where they are made, never on first use.

State made lazily (``if not hasattr(self, "_cache"): self._cache = {}``) hides what an
object holds from its constructor and from a reader, and two first uses at once can each
make their own. So the source (read with :mod:`ast`, nothing imported) may not look up,
with ``hasattr(self, "x")`` or ``getattr(self, "x", default)``, an attribute that
pangeohub itself sets on ``self`` somewhere (``self.x = ...``): such an attribute is
made in ``__init__`` (after ``super().__init__``), as a traitlets default, or as an
immutable class default. Looking up an upstream object's own optional attribute
(``getattr(self, "orm_spawner", None)``, dask-gateway's ``informer``, made in its
``setup()``) is not pangeohub's state and stays allowed.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pangeohub"


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def set_on_self(tree: ast.AST) -> set[str]:
    """The attribute names assigned as ``self.<name> = ...`` (plain, annotated, augmented,
    tuple targets) anywhere in ``tree``."""
    names = set()
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and _is_self(part.value):
                    names.add(part.attr)
    return names


def lazy_lookups(tree: ast.AST, own: set[str]) -> list[tuple[int, str]]:
    """``hasattr(self, "x")`` and ``getattr(self, "x", default)`` where ``x`` is in
    ``own``: (line, the call as written)."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            continue
        name, args = node.func.id, node.args
        lazy = (name == "hasattr" and len(args) == 2) or (name == "getattr" and len(args) == 3)
        if lazy and _is_self(args[0]) and _literal(args[1]) in own:
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_no_state_is_made_on_first_use():
    trees = {path: ast.parse(path.read_text(), str(path)) for path in PACKAGE.rglob("*.py")}
    own = set().union(*(set_on_self(tree) for tree in trees.values()))
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {call}"
        for path, tree in sorted(trees.items())
        for line, call in lazy_lookups(tree, own)
    ]
    assert found == [], "state made on first use; make it where the object is made:\n" + "\n".join(
        found
    )


def test_the_check_finds_state_made_on_first_use():
    source = """
class Guard:
    @property
    def cache(self):
        if not hasattr(self, "_verdicts"):
            self._verdicts = {}
        return self._verdicts

    def stop(self):
        tasks = getattr(self, "_stopping", None) or set()
        self._stopping = tasks
        return getattr(self, "orm_spawner", None)  # upstream's: allowed
"""
    tree = ast.parse(source)
    calls = [call for _, call in lazy_lookups(tree, set_on_self(tree))]
    assert calls == ["hasattr(self, '_verdicts')", "getattr(self, '_stopping', None)"]
