"""pangeohub's modules import one another without a cycle.

The graph is read from the source with :mod:`ast` (nothing is imported): an edge for every
import of a pangeohub module, at module level or inside a function (a deferred import is
still a dependency; it only hides the cycle until the function runs). Imports under
``if TYPE_CHECKING:`` never run and are left out, and so are the deferred imports inside
a package's ``__init__``: they are the package's lazy attributes (``pangeohub.configure``,
``pangeohub.binder.BinderBuilder``), there so that importing the package, which every
module below it does, stays light.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "pangeohub"


def module_files() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (its file, whether it is a package's ``__init__``)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _imported_names(node: ast.AST, package: str) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        return [module] + [f"{module}.{alias.name}" for alias in node.names]
    return []


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module-level edges, edges from imports inside functions), module -> modules."""
    modules = module_files()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    top: dict[str, set[str]] = {name: set() for name in modules}
    deferred: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]

        def visit(node: ast.AST, in_function: bool, edges_of=name, package=package) -> None:
            for child in ast.iter_child_nodes(node):
                if _is_type_checking(child):
                    continue
                inner = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                for imported in _imported_names(child, package):
                    target = resolve(imported) if imported.startswith("pangeohub") else None
                    if target and target != edges_of:
                        (deferred if in_function else top)[edges_of].add(target)
                visit(child, inner)

        visit(ast.parse(path.read_text(), str(path)), False)
        if is_package:
            deferred[name].clear()  # the package's lazy attributes (see the docstring)
    return top, deferred


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The graph's strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(edges.get(module, ())):
            if target not in index:
                connect(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(edges):
        if module not in index:
            connect(module)
    return found


def test_the_graph_is_read():
    top, deferred = import_graph()
    assert "pangeohub.policy" in top["pangeohub.refusal"]
    assert "pangeohub.server_hooks" in top["pangeohub.spawner.mixin"]
    assert "pangeohub.scratch.gcs" in deferred["pangeohub.scratch.service"]


def test_no_cycle_among_module_level_imports():
    top, _ = import_graph()
    assert cycles(top) == []


def test_no_cycle_even_counting_imports_inside_functions():
    top, deferred = import_graph()
    both = {name: top[name] | deferred[name] for name in top}
    assert cycles(both) == []


def test_a_cycle_is_found():
    """The check itself: a cycle through a deferred import is reported."""
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(edges) == [["a", "b", "c"]]


def test_the_gateway_reads_a_launched_image_without_the_hub():
    """Dask Gateway's process needs only the image's Python from pangeohub.binder."""
    top, deferred = import_graph()
    reached, todo = set(), ["pangeohub.gateway.backend"]
    while todo:
        module = todo.pop()
        for target in top[module] | deferred[module]:
            if target not in reached:
                reached.add(target)
                todo.append(target)
    assert "pangeohub.binder.image" in reached
    assert (
        not {"pangeohub.binder.server", "pangeohub.binder.launcher", "pangeohub.assembly"} & reached
    )
