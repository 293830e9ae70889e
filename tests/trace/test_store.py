"""The sqlite trace store: batched, flushed while running and on close, bounded, retained."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from greenroom import UsageError
from greenroom.trace import (
    MessageRow,
    Span,
    SqliteTraceStore,
    Tracer,
    TraceStoreUnavailable,
    new_id,
)
from greenroom.trace._schema import COLUMNS

from ._spans import record_all, request_spans

pytestmark = pytest.mark.anyio


def _count(path: Path) -> int:
    # A separate connection, as another process (``greenroom trace``) would read it.
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM greenroom_spans").fetchone()[0])


def _record(tracer: Tracer, n: int, *, trace_id: int | None = None, start: float = 0.0) -> None:
    now = start if start else time.time()
    for i in range(n):
        sid = new_id()
        tracer.record(
            trace_id or sid,
            sid,
            None if trace_id is None else trace_id,
            "message",
            "Work",
            "a",
            now + i * 1e-6,
            now + i * 1e-6,
        )


async def test_spans_are_written_in_batches_of_max_batch(tmp_path: Path) -> None:
    async with SqliteTraceStore(tmp_path / "t.db", max_batch=100) as store:
        _record(store.tracer, 250)
        await store.flush()  # writes what the flush task has not written yet
        stats = store.statistics()
        assert (stats.written, stats.batches) == (250, 3)


async def test_a_running_store_writes_spans_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteTraceStore(path, flush_interval=1.0) as store:
        spans = request_spans()
        record_all(store.tracer, spans)
        started = time.monotonic()
        with anyio.fail_after(5):
            while _count(path) < len(spans):  # read by another connection while it runs
                await anyio.lowlevel.checkpoint()
        assert time.monotonic() - started < 1.5
        got = await store.spans(spans[0].trace_id)
        assert [s.span_id for s in got] == [s.span_id for s in spans]


async def test_closing_the_store_writes_what_is_buffered(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteTraceStore(path, flush_interval=1.0) as store:
        await anyio.lowlevel.checkpoint()  # the flush task ran once, found nothing, sleeps
        _record(store.tracer, 500)
    assert _count(path) == 500


async def test_aclose_writes_what_is_buffered_and_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SqliteTraceStore(path)
    await store.__aenter__()
    _record(store.tracer, 10)
    await store.aclose()
    await store.aclose()
    assert _count(path) == 10


async def test_overload_drops_the_oldest_spans_and_counts_them(tmp_path: Path) -> None:
    tracer = Tracer(capacity=100)
    async with SqliteTraceStore(tmp_path / "t.db", tracer=tracer, flush_interval=1.0) as store:
        ids = []
        now = time.time()
        for i in range(1000):
            sid = new_id()
            ids.append(sid)
            tracer.record(sid, sid, None, "message", "Work", "a", now + i, now + i)
        await store.flush()
        assert store.statistics().dropped == 900
        kept = []
        for sid in ids[-100:]:
            kept += await store.spans(sid)
        assert len(kept) == 100
        assert await store.spans(ids[0]) == []


async def test_retention_deletes_spans_older_than_retention_seconds(tmp_path: Path) -> None:
    async with SqliteTraceStore(tmp_path / "t.db", retention_seconds=60) as store:
        old = request_spans(base=time.time() - 3600)
        new = request_spans()
        await store.write(old + new)
        await store.prune()  # the flush task may have pruned them already
        assert store.statistics().pruned == len(old)
        assert await store.spans(old[0].trace_id) == []
        assert len(await store.spans(new[0].trace_id)) == len(new)


async def test_retention_keeps_only_the_newest_max_spans(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteTraceStore(path, max_spans=10, retention_seconds=None) as store:
        base = time.time()
        spans = [
            Span(trace_id=1, span_id=i + 1, kind="message", name="W", start=base + i, end=base + i)
            for i in range(25)
        ]
        await store.write(spans)  # a write past the limit prunes at once
        kept = await store.spans(1)
        assert [s.span_id for s in kept] == list(range(16, 26))
        assert store.statistics().pruned == 15


async def test_recent_traces_summarise_root_status_duration_and_tokens(tmp_path: Path) -> None:
    async with SqliteTraceStore(tmp_path / "t.db") as store:
        first = request_spans(base=time.time() - 10)
        second = request_spans(base=time.time() - 5)
        await store.write(first + second)
        traces = await store.recent_traces(limit=10)
        assert [t.trace_id for t in traces] == [second[0].trace_id, first[0].trace_id]
        top = traces[0]
        assert (top.name, top.actor, top.status) == ("Ask", "coordinator", "ok")
        assert (top.spans, top.errors, top.tokens) == (5, 1, 150)
        assert top.duration == pytest.approx(0.5)


async def test_find_trace_resolves_a_hex_prefix(tmp_path: Path) -> None:
    async with SqliteTraceStore(tmp_path / "t.db") as store:
        spans = request_spans()
        await store.write(spans)
        hex_id = f"{spans[0].trace_id:016x}"
        assert await store.find_trace(hex_id) == [spans[0].trace_id]
        assert await store.find_trace(hex_id[:12]) == [spans[0].trace_id]
        assert await store.find_trace("ffffffffffffffff") == []
        with pytest.raises(UsageError, match="hex"):
            await store.find_trace("not-hex")


async def test_readers_see_committed_batches_while_a_writer_keeps_writing(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteTraceStore(path, max_batch=50) as store:
        seen: list[int] = []
        for _ in range(10):
            _record(store.tracer, 50)
            await store.flush()
            seen.append(_count(path))
        assert seen == list(range(50, 550, 50))


@pytest.mark.parametrize("fallback", [False, True], ids=["json-batch", "executemany"])
async def test_message_rows_are_written_exactly_as_buffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: bool
) -> None:
    if fallback:  # as where SQLite lacks JSON or reads doubles back inexactly
        monkeypatch.setattr("greenroom.trace._store.json_batch_supported", _unsupported)
    path = tmp_path / "t.db"
    now = time.time()
    rows = []
    for i in range(300):
        sid = new_id()
        start = now + i * 1.1e-6
        parent = None if i % 3 else sid - 1
        name = 'Work "é" \\ 2' if i % 2 else "Work"
        rows.append(
            MessageRow(sid, sid if i % 2 else 7, parent, name, "desk/clerk", start, start / 3)
        )
    async with SqliteTraceStore(path) as store:
        append, appended = store.tracer.message_rows()
        for row in rows:
            append(row)
        appended(len(rows))
        _record(store.tracer, 2, trace_id=7)  # other spans, in the same batch
    with sqlite3.connect(path) as db:
        got = db.execute(f"SELECT {COLUMNS} FROM greenroom_spans WHERE kind = 'message'").fetchall()
    implied = ("ok", None, None, None)  # status, tokens, attributes, error
    expected = [
        (r.span_id, r.trace_id, r.parent_id, "message", r.name, r.actor, r.start, r.end, *implied)
        for r in rows
    ]
    assert len(got) == 302
    assert sorted(set(got) & set(expected)) == sorted(expected)


async def _unsupported(db: object) -> bool:
    return False


async def test_a_database_with_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    async with SqliteTraceStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO greenroom_trace_schema VALUES (99, 0)")
    with pytest.raises(TraceStoreUnavailable, match="newer"):
        async with SqliteTraceStore(path):
            pass


async def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="flush_interval"):
        SqliteTraceStore(tmp_path / "t.db", flush_interval=2.0)
    with pytest.raises(UsageError, match="file path"):
        SqliteTraceStore(":memory:")
    with pytest.raises(UsageError, match="not open"):
        await SqliteTraceStore(tmp_path / "t.db").flush()
