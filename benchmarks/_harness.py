"""Small shared helpers for greenroom's benchmarks: repeats, medians, tables, JSON.

A benchmark measures one timed region per run (``time.perf_counter`` around
the work only; setup and teardown stay outside), repeats it, and reports the
median. Collect garbage before each timed region so that one contender's
garbage is not paid for by the next.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BenchArgs",
    "emit_json",
    "environment",
    "fmt_rate",
    "fmt_us",
    "median",
    "parse_args",
    "percentile",
    "print_table",
    "settle",
]


@dataclass(frozen=True, slots=True)
class BenchArgs:
    """The options every benchmark script takes, and the script's own on/off ``flags``
    that were given (by name, without the leading dashes)."""

    quick: bool
    json: bool
    repeat: int
    flags: frozenset[str] = field(default_factory=frozenset)


def parse_args(
    description: str,
    argv: Sequence[str] | None = None,
    *,
    flags: Mapping[str, str] | None = None,
) -> BenchArgs:
    """Parse ``[--quick] [--json] [--repeat N]``; repeats default to 5, or 3 with --quick.

    ``flags`` maps a script's own on/off options (``"million"`` for ``--million``)
    to their help text; the ones given are in :attr:`BenchArgs.flags`.
    """
    parser = argparse.ArgumentParser(description=description)
    for name, help_text in (flags or {}).items():
        parser.add_argument(f"--{name}", action="store_true", help=help_text)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats (CI)")
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON object on the last line"
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="repeats per measurement (default 5, --quick 3)"
    )
    ns = parser.parse_args(argv)
    repeat = ns.repeat if ns.repeat is not None else (3 if ns.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    given = frozenset(name for name in flags or {} if getattr(ns, name.replace("-", "_")))
    return BenchArgs(quick=ns.quick, json=ns.json, repeat=repeat, flags=given)


def settle() -> None:
    """Collect garbage (all generations) so the next timed region starts clean."""
    gc.collect()
    gc.collect()


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    return statistics.median(values)


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``ordered`` (sorted ascending, not empty):
    the smallest value that at least ``fraction`` (0 < fraction <= 1) of them do not exceed."""
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[min(rank, len(ordered)) - 1]


def fmt_rate(per_second: float | None) -> str:
    """A rate as a short, right-alignable string: ``1.23M``, ``456k``, ``789``."""
    if per_second is None:
        return "-"
    if per_second >= 1e6:
        return f"{per_second / 1e6:.2f}M"
    if per_second >= 1e4:
        return f"{per_second / 1e3:.0f}k"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k"
    return f"{per_second:.0f}"


def fmt_us(per_second: float | None) -> str:
    """The cost of one operation in microseconds, given operations per second."""
    if not per_second:
        return "-"
    return f"{1e6 / per_second:.2f}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a plain text table: first column left-aligned, the others right-aligned."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(w) for cell, w in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))


def environment() -> dict[str, Any]:
    """Facts about the machine and interpreter, to keep with the figures."""
    import os

    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def emit_json(payload: dict[str, Any]) -> None:
    """Print ``payload`` as one JSON object on one line (the last line of the output)."""
    sys.stdout.flush()
    print(json.dumps(payload, separators=(",", ":"), sort_keys=False))
    sys.stdout.flush()
