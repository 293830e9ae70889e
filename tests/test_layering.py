"""The package's imports point down the layer order of DESIGN.md, never up."""

from __future__ import annotations

import ast
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
