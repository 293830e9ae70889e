"""The size and shape of greenroom's core: lines, import circles, reach into privates.

Run::

    uv run benchmarks/core_size.py [--json]

Issue #15 asks that the core (``greenroom/actors/`` and the memory mailbox,
supervisor included) be readable in one sitting: at most 2,500 lines, no
import circle anywhere in ``greenroom/``, and no module reaching into
``Runtime``'s underscore names. This prints, per core file, its physical
lines and its code lines (neither blank, nor comment, nor docstring), the
totals against the target, the import circles of the whole package (the
imports that run, and, for reference, with ``if TYPE_CHECKING:`` imports
too), and the reads of ``runtime._x`` from other actors modules. Nothing
is timed, so ``--quick`` changes nothing; it is accepted as every
benchmark takes it. The circle search is the one ``tests/test_layering.py``
runs.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import tokenize
from pathlib import Path
from types import ModuleType

import _harness as h

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "greenroom"
CORE = [*sorted((PACKAGE / "actors").glob("*.py")), PACKAGE / "mailbox" / "_memory.py"]
LINE_TARGET = 2_500


def _layering() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layering", ROOT / "tests" / "test_layering.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_lines(path: Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text()
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            docstrings.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in skip or token.type == tokenize.ENDMARKER:
            continue
        lines.update(n for n in range(token.start[0], token.end[0] + 1) if n not in docstrings)
    return len(lines)


def type_checking_circles(layering: ModuleType) -> list[list[str]]:
    """Circles when annotation-only imports count too (they never run)."""
    paths = {layering._module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    while target and target not in paths:
                        target = target.rpartition(".")[0]
                    if target and target != name and not name.startswith(target + "."):
                        found.add(target)
        graph[name] = found
    circles: list[list[str]] = layering._circles(graph)
    return circles


def main() -> None:
    args = h.parse_args(__doc__.splitlines()[0])
    layering = _layering()
    rows = [
        (str(p.relative_to(ROOT)), len(p.read_text().splitlines()), code_lines(p)) for p in CORE
    ]
    physical = sum(r[1] for r in rows)
    code = sum(r[2] for r in rows)
    runtime_graph = {
        name: {m for m in deps if not name.startswith(m + ".")}
        for name, deps in layering._graph().items()
    }
    circles = layering._circles(runtime_graph)
    annotation_circles = type_checking_circles(layering)
    reach = len(layering.private_reads())
    if not args.json:
        h.print_table(
            ["file", "physical", "code"],
            [[name, f"{p:,}", f"{c:,}"] for name, p, c in rows]
            + [["total", f"{physical:,}", f"{code:,}"]],
        )
        verdict = "ok" if physical <= LINE_TARGET else "ABOVE"
        print(f"\ncore physical lines {physical:,} (target <= {LINE_TARGET:,}: {verdict})")
        print(f"core code lines     {code:,}")
        print(f"import circles (imports that run): {len(circles)}")
        for circle in circles:
            print("   ", " -> ".join(circle))
        count = len(annotation_circles)
        print(f"import circles counting TYPE_CHECKING imports (reference): {count}")
        for circle in annotation_circles:
            print(f"    {len(circle)} modules: {', '.join(circle)}")
        print(f"reads of Runtime underscore names from other actors modules: {reach}")
    if not args.json:
        return
    h.emit_json(
        {
            "core_physical_lines": physical,
            "core_code_lines": code,
            "core_line_target": LINE_TARGET,
            "import_circles": len(circles),
            "import_circles_with_type_checking": len(annotation_circles),
            "runtime_private_reads": reach,
            "files": {name: {"physical": p, "code": c} for name, p, c in rows},
        }
    )


if __name__ == "__main__":
    main()
