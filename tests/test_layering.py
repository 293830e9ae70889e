"""The package's imports point down the layer order of DESIGN.md, never up."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import greenroom

PACKAGE = Path(greenroom.__file__).parent
# Lowest first. A module may import its own layer and those before it.
LAYERS = [
    "_secrets",
    "_stored",
    "_errors",
    "_migrate",
    "trace",
    "mailbox",
    "actors",
    "store",
    "tools",
    "decide",
    "agent",
    "cluster",
    "testing",
    "cli",
]


def _layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "greenroom" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE or p.stem in LAYERS)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_own_or_lower_layers(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    own = LAYERS.index(rel.parts[0] if len(rel.parts) > 1 else rel.stem)
    upward = [
        f"line {line}: {name}"
        for line, name in _imports(path)
        if (layer := _layer_of(name)) is not None and layer > own
    ]
    assert not upward, f"{rel} imports from a higher layer: {upward}"


def test_every_subpackage_is_in_the_layer_list() -> None:
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert subpackages <= set(LAYERS), subpackages - set(LAYERS)


def test_the_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from greenroom.store import Scope\n")
    assert [_layer_of(name) for _, name in _imports(bad)] == [LAYERS.index("store")]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, known: set[str]) -> set[str]:
    """The greenroom modules ``path`` imports when it runs (``if TYPE_CHECKING:`` blocks
    excluded: they never execute), function-level imports included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.orelse:
                    visit(stmt)
                continue
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                names = [f"{child.module}.{alias.name}" for alias in child.names]
            for name in names:
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name:
                    found.add(name)
            visit(child)

    visit(tree)
    return found


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part: list[str] = []
            while (w := stack.pop()) != v:
                part.append(w)
            if part:
                circles.append(sorted([v, *part]))

    for v in graph:
        if v not in index:
            strong(v)
    return circles


def _graph() -> dict[str, set[str]]:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: _runtime_imports(p, known) - {name} for name, p in paths.items()}


def test_no_import_circle_anywhere_in_the_package() -> None:
    # A package __init__ re-exports its modules; a module importing its own
    # package (or a module importing its package's __init__) is the only
    # edge allowed to point back, as Python resolves it from sys.modules.
    graph = {
        name: {m for m in deps if not name.startswith(m + ".")} for name, deps in _graph().items()
    }
    assert _circles(graph) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def private_reads() -> list[str]:
    """Reads of ``runtime._x`` (or ``_runtime._x``) from actors modules other than _runtime."""
    found = []
    for path in sorted((PACKAGE / "actors").glob("*.py")):
        if path.name == "_runtime.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr in ("runtime", "_runtime")
            ):
                found.append(f"{path.name}:{node.lineno}: .{node.value.attr}.{node.attr}")
    return found


def test_actors_modules_reach_each_other_only_through_public_names_or_the_system() -> None:
    # The internal interface of the actors package is System (actors/_system.py):
    # no actors module reads an underscore attribute of the Runtime.
    assert private_reads() == []


def _interface_names() -> set[str]:
    """The underscore names System's module docstring lists as the internal interface."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "actors" / "_system.py").read_text())) or ""
    listed = doc.split("crosses a module)", 1)[1]
    return set(re.findall(r"``(_[a-z][a-z_]*)``", listed))


def cross_module_private_names() -> dict[str, set[str]]:
    """Per actors module, the underscore attributes it reads of objects it does not own:
    not ``self``/``cls``, and not defined in the module itself."""
    found: dict[str, set[str]] = {}
    for path in sorted((PACKAGE / "actors").glob("*.py")):
        tree = ast.parse(path.read_text())
        own = {
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        } | {
            target.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign | ast.AnnAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Attribute)
        }
        own |= {
            elt.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)
            for elt in getattr(node.value, "elts", [])
            if isinstance(elt, ast.Constant)
        }
        names = {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "sys"))
            and node.attr not in own
        }
        if names:
            found[path.name] = names
    return found


def test_actors_modules_share_only_the_documented_internal_interface() -> None:
    allowed = _interface_names()
    assert {"_cell", "_target", "_child_failed"} <= allowed  # the docstring was found
    crossing = {
        module: sorted(names - allowed)
        for module, names in cross_module_private_names().items()
        if names - allowed
    }
    assert crossing == {}, (
        "an actors module uses another's underscore name; go through System, or "
        "document the name in actors/_system.py's docstring"
    )
