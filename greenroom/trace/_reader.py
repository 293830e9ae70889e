"""Reading a trace store: the queries, and a read-only opener for ``greenroom trace``.

:class:`TraceReader` opens an existing trace database read-only (an SQLite
``mode=ro`` URI), so pointing ``greenroom trace`` or ``greenroom eval`` at
the wrong file can never create tables in it. It refuses a missing file and
a file that is not a trace store. The query functions are shared with
:class:`~greenroom.trace.SqliteTraceStore`; they read text as bytes and
decode every row totally (:func:`~greenroom.trace._rows.span_of_stored_row`),
so a corrupted or hostile row is shown with markers, never raised.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import urllib.parse
from types import TracebackType
from typing import Final, Self

import aiosqlite
import msgspec

from greenroom._errors import UsageError
from greenroom._stored import stored_int, stored_text, stored_time
from greenroom.trace._errors import TraceStoreUnavailable
from greenroom.trace._rows import UNREADABLE, span_of_stored_row
from greenroom.trace._schema import COLUMNS, MIGRATIONS, SCHEMA_TABLE
from greenroom.trace._span import Span, SpanStatus

__all__ = ["TraceReader", "TraceSummary", "find_trace", "recent_traces", "trace_spans"]

_SELECT: Final = f"SELECT {COLUMNS} FROM greenroom_spans"
# Token counts are added as floats (total()), so stored values past 64 bits do not
# make the whole listing fail with an integer overflow; times that are not numbers,
# or past the year 5000, are left out of a trace's start and end.
_RECENT: Final = """
    WITH roots AS (
        SELECT trace_id, name, actor, status, start_at FROM greenroom_spans
        WHERE parent_id IS NULL ORDER BY start_at DESC LIMIT ?
    )
    SELECT r.trace_id, r.name, r.actor, r.status,
           min(CASE WHEN typeof(s.start_at) IN ('integer', 'real') THEN s.start_at END),
           max(CASE WHEN typeof(s.end_at) IN ('integer', 'real') AND s.end_at < 1e11
               THEN s.end_at END),
           count(*),
           total(s.status = 'error'), total(s.tokens), count(s.tokens)
    FROM roots r JOIN greenroom_spans s ON s.trace_id = r.trace_id
    GROUP BY r.trace_id ORDER BY min(r.start_at) DESC
"""
_MAX_ID: Final = (1 << 63) - 1


class TraceSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One trace as ``greenroom trace ls`` shows it.

    ``name``, ``actor`` and ``status`` are the root span's; ``start`` and
    ``end`` span all of the trace's spans (wall-clock seconds); ``errors``
    counts spans that failed (a retried crash shows here while the root is
    ``"ok"``); ``tokens`` sums ``gen_ai.usage.input_tokens`` and
    ``output_tokens`` over the trace, ``None`` when no span had any.
    ``problems`` lists the values of the root's row that could not be read
    as stored (neutral values are shown instead); empty for a sound row.
    """

    trace_id: int
    name: str
    actor: str | None
    status: SpanStatus
    start: float
    end: float
    spans: int
    errors: int
    tokens: int | None
    problems: tuple[str, ...] = ()

    @property
    def duration(self) -> float:
        """``end - start`` in seconds."""
        return max(0.0, self.end - self.start)


def _count(value: object) -> int:
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value) and abs(value) < 2**63:
        return int(value)
    return 0


def _summary(row: sqlite3.Row | tuple[object, ...]) -> TraceSummary:
    problems: list[str] = []
    trace_id, name, actor, status, start, end, spans, errors, tokens, counted = row
    return TraceSummary(
        trace_id=stored_int(trace_id, "trace_id", problems) or 0,
        name=stored_text(name, "name", problems),
        actor=None if actor is None else stored_text(actor, "actor", problems),
        status="error" if status in ("error", b"error") else "ok",
        start=stored_time(start, "start_at", problems),
        end=stored_time(end, "end_at", problems),
        spans=_count(spans),
        errors=_count(errors),
        tokens=_count(tokens) if _count(counted) else None,
        problems=tuple(problems),
    )


async def _fetch(
    db: aiosqlite.Connection, path: str, sql: str, params: tuple[object, ...]
) -> list[sqlite3.Row]:
    try:
        return list(await db.execute_fetchall(sql, params))
    except sqlite3.Error as error:
        raise TraceStoreUnavailable(path, "read", str(error)) from error


async def recent_traces(db: aiosqlite.Connection, path: str, limit: int) -> list[TraceSummary]:
    """The ``limit`` traces whose root span started last, newest first (see ``TraceSummary``).

    Raises:
        UsageError: ``limit`` is not an int from 0 to 2**63 - 1.
        TraceStoreUnavailable: the read failed.
    """
    if type(limit) is not int or not 0 <= limit <= _MAX_ID:
        raise UsageError(f"limit is an int from 0 to 2**63 - 1, got {limit!r}")
    return [_summary(row) for row in await _fetch(db, path, _RECENT, (limit,))]


async def trace_spans(db: aiosqlite.Connection, path: str, trace_id: int) -> list[Span]:
    """Every stored span of one trace, by start time (``[]`` for an unknown trace).

    Raises:
        UsageError: ``trace_id`` is not an int that a trace id can be.
        TraceStoreUnavailable: the read failed.
    """
    if type(trace_id) is not int or not -_MAX_ID - 1 <= trace_id <= _MAX_ID:
        raise UsageError(f"a trace id is a 64-bit int, got {trace_id!r}")
    rows = await _fetch(
        db, path, f"{_SELECT} WHERE trace_id = ? ORDER BY start_at, span_id", (trace_id,)
    )
    return _placed([span_of_stored_row(row) for row in rows])


def _bad_times(span: Span) -> tuple[bool, bool]:
    problems = span.attributes.get(UNREADABLE)
    if not isinstance(problems, list):
        return False, False
    return (
        any(str(p).startswith("start_at:") for p in problems),
        any(str(p).startswith("end_at:") for p in problems),
    )


def _placed(spans: list[Span]) -> list[Span]:
    """Spans whose times could not be read, placed at the trace's start (not at 1970).

    A bad start takes its end, else the earliest readable start of the trace;
    a bad end takes the start: the span shows as an instant, marked unreadable.
    """
    sound = [s.start for s in spans if not _bad_times(s)[0]]
    earliest = min(sound, default=0.0)
    for span in spans:
        bad_start, bad_end = _bad_times(span)
        if bad_start:
            span.start = span.end if not bad_end else earliest
        if bad_end:
            span.end = span.start
    return spans


async def find_trace(db: aiosqlite.Connection, path: str, prefix: str) -> list[int]:
    """Trace ids whose 16-digit hex form starts with ``prefix`` (at most 2: enough to tell
    a unique match from an ambiguous one).

    Raises:
        UsageError: ``prefix`` is not 1 to 16 hex digits.
        TraceStoreUnavailable: the read failed.
    """
    text = prefix.strip().lower() if isinstance(prefix, str) else ""
    if not 1 <= len(text) <= 16 or any(c not in "0123456789abcdef" for c in text):
        raise UsageError(f"a trace id is 1 to 16 hex digits, got {prefix!r}")
    shift = 4 * (16 - len(text))
    low = int(text, 16) << shift
    high = min((int(text, 16) + 1) << shift, 1 << 63) - 1
    if low > high:
        return []  # ids are below 2**63: nothing starts with this
    rows = await _fetch(
        db,
        path,
        "SELECT DISTINCT trace_id FROM greenroom_spans WHERE trace_id BETWEEN ? AND ? LIMIT 2",
        (low, high),
    )
    return [row[0] for row in rows if type(row[0]) is int]


def read_only_uri(path: str) -> str:
    """An SQLite URI that opens ``path`` read-only (any bytes in the name quoted)."""
    absolute = os.path.abspath(path)
    return "file:" + urllib.parse.quote_from_bytes(os.fsencode(absolute)) + "?mode=ro"


class TraceReader:
    """An existing trace database, opened read-only: ``async with TraceReader(path) as r:``.

    Opening refuses, with :class:`UsageError`, a path that is not a file, a
    file that is not an SQLite database, and a database without greenroom's
    trace tables; nothing is ever written to the file (SQLite may keep its
    own ``-wal``/``-shm`` files beside a database in WAL mode). It raises
    :class:`TraceStoreUnavailable` when the database cannot be read or its
    schema is newer than this greenroom knows. The query methods are those
    of :class:`~greenroom.trace.SqliteTraceStore`, and raise the same.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._db: aiosqlite.Connection | None = None

    def __repr__(self) -> str:
        return f"TraceReader({self.path!r})"

    async def __aenter__(self) -> Self:
        path = self.path
        if not os.path.isfile(path):  # noqa: ASYNC240 - one stat, before any I/O
            what = "is not a file" if os.path.exists(path) else "does not exist"  # noqa: ASYNC240
            raise UsageError(f"no trace database at {path}: the path {what}; pass --db PATH")
        try:
            db = await aiosqlite.connect(read_only_uri(path), uri=True, isolation_level=None)
        except sqlite3.Error as error:
            raise TraceStoreUnavailable(path, "open", str(error)) from error
        try:
            db.text_factory = bytes  # text that is not UTF-8 is decoded by the row decoder
            await db.execute("PRAGMA busy_timeout = 5000")
            await _check_schema(db, path)
        except BaseException:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await db.close()
            raise
        self._db = db
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(sqlite3.Error, ValueError):
                await db.close()

    def _open(self) -> aiosqlite.Connection:
        if self._db is None:
            raise UsageError(f"{self!r} is not open; use `async with TraceReader(path)`")
        return self._db

    async def recent_traces(self, limit: int = 20) -> list[TraceSummary]:
        """See :meth:`SqliteTraceStore.recent_traces`."""
        return await recent_traces(self._open(), self.path, limit)

    async def spans(self, trace_id: int) -> list[Span]:
        """See :meth:`SqliteTraceStore.spans`."""
        return await trace_spans(self._open(), self.path, trace_id)

    async def find_trace(self, prefix: str) -> list[int]:
        """See :meth:`SqliteTraceStore.find_trace`."""
        return await find_trace(self._open(), self.path, prefix)


async def _check_schema(db: aiosqlite.Connection, path: str) -> None:
    not_ours = f"{path} is not a greenroom trace database"
    try:
        rows = list(
            await db.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
                (SCHEMA_TABLE, "greenroom_spans"),
            )
        )
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise UsageError(f"{not_ours} (it is not an SQLite file); pass --db PATH") from error
        raise TraceStoreUnavailable(path, "open", str(error)) from error
    if len(rows) < 2:
        raise UsageError(
            f"{not_ours} (it has no {SCHEMA_TABLE} and greenroom_spans tables); pass --db PATH"
        )
    try:
        found = list(await db.execute_fetchall(f"SELECT max(version) FROM {SCHEMA_TABLE}"))
    except sqlite3.Error as error:
        raise TraceStoreUnavailable(path, "open", str(error)) from error
    version = found[0][0] if found else None
    known = MIGRATIONS[-1][0]
    if type(version) is not int:
        raise UsageError(f"{not_ours} (its schema version {version!r} is not a number)")
    if version > known:
        raise TraceStoreUnavailable(
            path,
            "open",
            f"its schema version {version} is newer than this greenroom knows ({known}); "
            "upgrade greenroom",
        )
