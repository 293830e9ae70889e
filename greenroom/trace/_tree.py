"""Spans as a tree: the shape shared by the terminal view and the HTML timeline."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from greenroom.trace._ids import format_id
from greenroom.trace._span import Span

__all__ = ["format_duration", "render_tree", "walk"]


def walk(spans: Iterable[Span]) -> list[tuple[int, Span]]:
    """``(depth, span)`` in tree order: children after their parent, siblings by start.

    A span whose parent is not among ``spans`` (dropped, or still running)
    is shown as a root.
    """
    items = sorted(spans, key=lambda s: (s.start, s.span_id))
    ids = {s.span_id for s in items}
    children: dict[int | None, list[Span]] = {}
    for span in items:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    out: list[tuple[int, Span]] = []
    seen: set[int] = set()
    stack = [(0, s) for s in reversed(children.get(None, []))]
    while stack:
        depth, span = stack.pop()
        if span.span_id in seen:  # a cycle in bad data: show each span once
            continue
        seen.add(span.span_id)
        out.append((depth, span))
        stack.extend((depth + 1, c) for c in reversed(children.get(span.span_id, [])))
    return out


def format_duration(seconds: float) -> str:
    """``850µs``, ``12.3ms``, ``4.20s``."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def render_tree(spans: Iterable[Span], *, attributes: bool = False) -> str:
    """The spans of a trace as an indented tree for a terminal.

    One line per span: kind, name, actor, duration, then ``ERROR type:
    message`` for a failed span. With ``attributes``, each span's attributes
    follow it, one per line. The header names the trace and when it began.
    """
    rows = walk(spans)
    if not rows:
        return "(no spans)\n"
    first = rows[0][1]
    begin = min(s.start for _, s in rows)
    end = max(s.end for _, s in rows)
    errors = sum(1 for _, s in rows if s.status == "error")
    when = dt.datetime.fromtimestamp(begin).isoformat(sep=" ", timespec="milliseconds")
    lines = [
        f"trace {format_id(first.trace_id)}  {when}  {format_duration(end - begin)}  "
        f"{len(rows)} spans" + (f"  {errors} failed" if errors else "")
    ]
    for depth, span in rows:
        mark = "✗" if span.status == "error" else "•"
        actor = f" @{span.actor}" if span.actor else ""
        offset = format_duration(span.start - begin)
        line = (
            f"{'  ' * depth}{mark} {span.kind} {span.name}{actor}  "
            f"{format_duration(span.duration)} (+{offset})"
        )
        if span.error is not None:
            line += f"  ERROR {span.error.type}: {span.error.message}"
        lines.append(line)
        if attributes:
            for key, value in span.attributes.items():
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                lines.append(f"{'  ' * (depth + 1)}  {key} = {text}")
    return "\n".join(lines) + "\n"
