"""Fuzz: trace rows read back are decoded totally, shown and exported without a traceback.

A hostile row goes straight into ``greenroom_spans`` beside a sound root span
of the same trace: values of the wrong type in any column, text that is not
UTF-8, attributes and errors that are not JSON, nested thousands deep, or
of the wrong shape, times no calendar can show. Reading it (``spans``,
``recent_traces``, ``find_trace``), then rendering the tree, the JSON and
the HTML the CLI would print, never raises; whatever could not be read is
marked; the sound span comes back as written.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings

from greenroom.trace import Span, render_html, render_tree
from greenroom.trace._cli import shown_span
from greenroom.trace._reader import TraceReader
from greenroom.trace._rows import UNREADABLE
from greenroom.trace._schema import COLUMNS
from greenroom.trace._terminal import terminal_json, terminal_text, unsafe_for_terminal
from tests._fuzz import FUZZ_SETTINGS, record
from tests._hostile_rows import TRACE_ID, add_good_span, insert_row, make_trace_db, scratch_dir
from tests._hostile_rows import span_row as hostile_span_row


@pytest.fixture(scope="module")
def trace_db() -> Iterator[Path]:
    with scratch_dir() as folder:
        yield make_trace_db(folder / "traces.db")


def _marked(span: Span) -> bool:
    return UNREADABLE in span.attributes or (
        span.error is not None and span.error.type == "greenroom.UnreadableError"
    )


@settings(parent=FUZZ_SETTINGS, max_examples=120)
@given(row=hostile_span_row(span_id=2))
def test_any_stored_span_row_is_read_shown_and_exported(trace_db: Path, row: list[Any]) -> None:
    with sqlite3.connect(trace_db) as db:
        db.execute("DELETE FROM greenroom_spans")
        add_good_span(db, span_id=1)
        insert_row(db, "greenroom_spans", COLUMNS, row)

    async def read() -> tuple[list[Span], int]:
        async with TraceReader(trace_db) as reader:
            assert await reader.find_trace(f"{TRACE_ID:016x}") == [TRACE_ID]
            listed = await reader.recent_traces(10)
            assert TRACE_ID in {t.trace_id for t in listed}
            return await reader.spans(TRACE_ID), len(listed)

    try:
        spans, _ = anyio.run(read)
        good = next(s for s in spans if s.span_id == 1)
        assert (good.name, good.actor, good.attributes) == (
            "Charge",
            "billing",
            {"gen_ai.request.model": "m"},
        )
        shown = [shown_span(s) for s in spans]
        tree = terminal_text(render_tree(shown, attributes=True), multiline=True)
        assert not unsafe_for_terminal(tree)
        assert not unsafe_for_terminal(terminal_json([s.attributes for s in spans]))
        assert render_html(shown).startswith("<!DOCTYPE html>")
    except Exception:
        record("trace-rows", "escaped")
        raise
    hostile = [s for s in spans if s.span_id == 2]
    record("trace-rows", "typed" if any(map(_marked, hostile)) else "accepted")


def test_a_corrupt_attribute_is_shown_as_a_marker_not_raised(trace_db: Path) -> None:
    with sqlite3.connect(trace_db) as db:
        db.execute("DELETE FROM greenroom_spans")
        add_good_span(db, span_id=1)
        db.execute(
            "UPDATE greenroom_spans SET attributes = ?, name = CAST(? AS TEXT), error = ?",
            ('{"k": ' * 5000 + "1" + "}" * 5000, b"Ch\xffarge", "{not json"),
        )

    async def read() -> list[Span]:
        async with TraceReader(trace_db) as reader:
            return await reader.spans(TRACE_ID)

    [span] = anyio.run(read)
    assert span.name == "Ch\\xffarge"
    assert span.error is not None
    assert span.error.type == "greenroom.UnreadableError"
    [attributes_problem, name_problem] = span.attributes[UNREADABLE]
    assert attributes_problem.startswith("attributes: RecursionError")
    assert name_problem == "name: not UTF-8 text: b'Ch\\xffarge'"


def test_a_span_with_an_unreadable_time_is_placed_in_its_trace_not_in_1970(
    trace_db: Path,
) -> None:
    with sqlite3.connect(trace_db) as db:
        db.execute("DELETE FROM greenroom_spans")
        add_good_span(db, span_id=1)
        add_good_span(db, span_id=2)
        db.execute(
            "UPDATE greenroom_spans SET start_at = 'soon', end_at = 1e300, parent_id = 1 "
            "WHERE span_id = 2"
        )

    async def read() -> tuple[list[Span], list[Any]]:
        async with TraceReader(trace_db) as reader:
            return await reader.spans(TRACE_ID), await reader.recent_traces()

    [root, odd], [summary] = anyio.run(read)
    assert (odd.start, odd.end) == (root.start, root.start)
    assert (summary.start, summary.end, summary.problems) == (root.start, root.end, ())
    header = render_tree([shown_span(root), shown_span(odd)]).splitlines()[0]
    assert "2023-11-1" in header
    assert "500.0ms" in header
