"""SqliteTraceStore: spans drained from a tracer and written to sqlite in batches."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Final, Self

import aiosqlite
import anyio
import anyio.abc
import msgspec

from greenroom._errors import UsageError
from greenroom.trace._batch import (
    INSERT_MESSAGE_ROWS,
    encode_message_rows,
    json_batch_supported,
    split_entries,
)
from greenroom.trace._errors import TraceStoreUnavailable
from greenroom.trace._export import SpanExporter
from greenroom.trace._logging import logger
from greenroom.trace._reader import TraceSummary, find_trace, recent_traces, trace_spans
from greenroom.trace._rows import Row, row_of_span, rows_of_entries, span_of_row
from greenroom.trace._schema import COLUMNS, SchemaTooNew, migrate
from greenroom.trace._span import Span
from greenroom.trace._tracer import Tracer, expand_entry, to_span

__all__ = ["SqliteTraceStore", "TraceStoreStatistics", "TraceSummary"]

_INSERT: Final = (
    f"INSERT OR REPLACE INTO greenroom_spans ({COLUMNS}) VALUES ({', '.join('?' * 12)})"
)
_PRUNE_EVERY: Final = 5.0  # seconds between retention passes of the flush task


class TraceStoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`SqliteTraceStore` since it was opened.

    ``written``: spans committed; ``batches``: write transactions;
    ``failed``: spans lost to a failed write; ``pruned``: spans deleted by
    retention; ``export_errors``: exporter calls that raised; ``dropped``:
    the tracer's count of spans discarded because its buffer was full.
    """

    written: int
    batches: int
    failed: int
    pruned: int
    export_errors: int
    dropped: int


class SqliteTraceStore:
    """Spans in an sqlite file: drained from a :class:`Tracer`, written in batches.

    Use as ``async with SqliteTraceStore(path) as store:`` and record spans
    into ``store.tracer`` (or pass the ``tracer`` to use). While open, a
    background task drains the tracer every ``flush_interval`` seconds
    (at most 1) — at once again while it finds full batches — and writes
    each batch of up to ``max_batch`` spans in one transaction,
    parameterised. The message spans of a batch go as one JSON parameter
    that SQLite unpacks with the GIL released, so writing does not take the
    GIL from the actors once per row (used where SQLite reads back the exact
    doubles written, checked on open; otherwise, like other spans, by
    ``executemany``). Leaving the block (or :meth:`aclose`) stops that task,
    writes what is buffered (within ``close_timeout`` seconds, even when
    cancelled) and closes. Open and close in the same task.

    The file is in WAL mode, so other connections and processes (``greenroom
    trace``) read it while it is written; reads here use their own
    connection. Attributes and errors are redacted before they are written
    (and before exporters see them). Retention runs every 5 seconds (the
    first 5 seconds after opening), when a write takes the table past
    ``max_spans``, and on :meth:`prune`: spans that started more than
    ``retention_seconds`` ago are deleted, then the oldest beyond
    ``max_spans``. ``None`` means no limit.

    Spans and batches that cannot be written are logged (loguru, event
    ``trace_write_failed``) and counted, never raised into the application.

    Raises :class:`UsageError` for bad options; opening raises
    :class:`TraceStoreUnavailable` when the file cannot be opened or its
    schema is newer than this greenroom knows; the query methods raise it
    when a read fails.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        tracer: Tracer | None = None,
        retention_seconds: float | None = 7 * 86_400.0,
        max_spans: int | None = 1_000_000,
        flush_interval: float = 0.5,
        max_batch: int = 4096,
        exporters: Sequence[SpanExporter] = (),
        close_timeout: float = 5.0,
    ) -> None:
        text = os.fspath(path)
        if text in ("", ":memory:") or text.startswith("file::memory:"):
            raise UsageError("SqliteTraceStore needs a file path (it opens two connections)")
        if retention_seconds is not None and not retention_seconds > 0:
            raise UsageError(f"retention_seconds is > 0 or None, got {retention_seconds!r}")
        if max_spans is not None and (type(max_spans) is not int or max_spans < 1):
            raise UsageError(f"max_spans is an int >= 1 or None, got {max_spans!r}")
        if not 0 < flush_interval <= 1.0:
            raise UsageError(f"flush_interval is in seconds, > 0 and <= 1, got {flush_interval!r}")
        if type(max_batch) is not int or not 1 <= max_batch <= 65_536:
            raise UsageError(f"max_batch is an int from 1 to 65536, got {max_batch!r}")
        if not close_timeout > 0:
            raise UsageError(f"close_timeout is in seconds and > 0, got {close_timeout!r}")
        self._path = text
        self.tracer: Tracer = Tracer() if tracer is None else tracer
        """The tracer this store drains."""
        self._retention = retention_seconds
        self._max_spans = max_spans
        self._interval = flush_interval
        self._max_batch = max_batch
        self._json_batches = False  # set on open: SQLite takes message rows as one JSON batch
        self._exporters = tuple(exporters)
        self._close_timeout = close_timeout
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._lock = anyio.Lock()
        self._closed = False
        self._count = 0  # spans in the table, an upper bound between prunes
        self._last_prune = 0.0
        self._written = self._batches = self._failed = self._pruned = self._export_errors = 0

    def __repr__(self) -> str:
        return f"SqliteTraceStore({self._path!r})"

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._writer is not None or self._closed:
            raise UsageError(f"{self!r} is open or closed already; make a new SqliteTraceStore")
        try:
            self._writer = await aiosqlite.connect(self._path, isolation_level=None)
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._writer.execute("PRAGMA synchronous = NORMAL")
            await self._writer.execute("PRAGMA busy_timeout = 5000")
            await migrate(self._writer)
            self._json_batches = await json_batch_supported(self._writer)
            rows = list(await self._writer.execute_fetchall("SELECT count(*) FROM greenroom_spans"))
            self._count = int(rows[0][0])
            self._reader = await aiosqlite.connect(self._path, isolation_level=None)
            await self._reader.execute("PRAGMA busy_timeout = 5000")
            await self._reader.execute("PRAGMA query_only = ON")
            self._reader.text_factory = bytes  # rows are decoded totally (span_of_stored_row)
        except (sqlite3.Error, SchemaTooNew) as error:
            await self._close_connections()
            reason = (
                f"its schema version {error.found} is newer than this greenroom knows "
                f"({error.known}); upgrade greenroom"
                if isinstance(error, SchemaTooNew)
                else str(error)
            )
            raise TraceStoreUnavailable(self._path, "open", reason) from error
        except BaseException:
            await self._close_connections()
            raise
        # The first retention pass waits its turn: run at once, it would contend
        # for the GIL with whatever the application does right after opening.
        self._last_prune = time.monotonic()
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        await self._task_group.start(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        self._closed = True
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return None
        task_group.cancel_scope.cancel()
        try:
            # The group holds only the flush task: an exception from the block is
            # not its business and propagates as it is (not wrapped in a group).
            await task_group.__aexit__(None, None, None)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self._close_timeout):
                await self._flush()
            await self._close_connections()
        return None

    async def aclose(self) -> None:
        """Write what the tracer holds and close. Idempotent."""
        await self.__aexit__(None, None, None)

    async def _close_connections(self) -> None:
        with anyio.CancelScope(shield=True):
            for db in (self._reader, self._writer):
                if db is not None:
                    with contextlib.suppress(sqlite3.Error, ValueError):
                        await db.close()
            self._reader = self._writer = None

    async def _run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        while True:
            _, full = await self._flush()
            if time.monotonic() - self._last_prune >= _PRUNE_EVERY:
                async with self._lock:
                    await self._prune()
            if full:
                await anyio.lowlevel.checkpoint()
            else:
                await anyio.sleep(self._interval)

    # -- writing -----------------------------------------------------------------

    async def flush(self) -> int:
        """Write every span the tracer holds now; return how many were written.

        Raises :class:`UsageError` when the store is not open.
        """
        self._check_open()
        written, _ = await self._flush()
        return written

    async def write(self, spans: Iterable[Span]) -> int:
        """Write ``spans`` (made elsewhere: an import, a test), redacted; return how many."""
        self._check_open()
        items = list(spans)
        rows = [row_of_span(span) for span in items]
        async with self._lock:
            return await self._write_rows(rows, items if self._exporters else None)

    async def _flush(self) -> tuple[int, bool]:
        """Drain and write; return spans written and whether a batch was full (more waiting)."""
        tracer = self.tracer
        full = False
        written = 0
        async with self._lock:
            # Drain what is there now, not what keeps arriving while we write.
            remaining = tracer.statistics().buffered
            while remaining > 0:
                entries = tracer.drain_entries(min(remaining, self._max_batch))
                if not entries:
                    break
                remaining -= len(entries)
                full = len(entries) == self._max_batch
                try:
                    batch: bytes | None = None
                    in_batch = 0
                    if self._json_batches:
                        messages, others = split_entries(entries)
                        if messages:
                            batch, in_batch = encode_message_rows(messages), len(messages)
                        rows = rows_of_entries(others)
                    else:
                        rows = rows_of_entries(entries)
                    spans = (
                        [to_span(expand_entry(entry)) for entry in entries]
                        if self._exporters
                        else None
                    )
                except Exception as error:  # a bug here must not stop the flush task
                    self._failed += len(entries)
                    logger.bind(event="trace_write_failed").opt(exception=error).warning(
                        "trace store {path}: {n} spans could not be converted",
                        path=self._path,
                        n=len(entries),
                    )
                    continue
                # Shielded: spans taken from the tracer are written, not lost to a cancel.
                with anyio.CancelScope(shield=True):
                    written += await self._write_rows(rows, spans, batch, in_batch)
        return written, full

    async def _write_rows(
        self,
        rows: list[Row],
        spans: Sequence[Span] | None,
        batch: bytes | None = None,
        in_batch: int = 0,
    ) -> int:
        """Write ``rows`` and ``batch`` (``in_batch`` message rows as JSON) in one transaction."""
        db = self._writer
        n = len(rows) + in_batch
        if db is None or n == 0:
            return 0
        try:
            if not rows:
                await db.execute(INSERT_MESSAGE_ROWS, (batch,))  # one statement, one transaction
            else:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    if batch is not None:
                        await db.execute(INSERT_MESSAGE_ROWS, (batch,))
                    await db.executemany(_INSERT, rows)
                    await db.execute("COMMIT")
                except BaseException:
                    with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                        await db.execute("ROLLBACK")
                    raise
        except sqlite3.Error as error:
            self._failed += n
            logger.bind(event="trace_write_failed", path=self._path).warning(
                "trace store {path}: {n} spans could not be written: {error}",
                path=self._path,
                n=n,
                error=error,
            )
            return 0
        self._written += n
        self._batches += 1
        self._count += n
        if self._exporters:
            self._export(spans if spans is not None else [span_of_row(row) for row in rows])
        if self._max_spans is not None and self._count > self._max_spans:
            await self._prune()
        return n

    def _export(self, spans: Sequence[Span]) -> None:
        for exporter in self._exporters:
            try:
                exporter.export(spans)
            except Exception as error:
                self._export_errors += 1
                logger.bind(event="trace_export_failed").opt(exception=error).warning(
                    "trace exporter {exporter!r} raised", exporter=exporter
                )

    async def prune(self) -> int:
        """Apply retention now; return how many spans were deleted.

        Raises :class:`UsageError` when the store is not open and
        :class:`TraceStoreUnavailable` when the delete fails.
        """
        self._check_open()
        async with self._lock:
            return await self._prune(raise_errors=True)

    async def _prune(self, *, raise_errors: bool = False) -> int:
        db = self._writer
        if db is None:
            return 0
        self._last_prune = time.monotonic()
        deleted = 0
        try:
            if self._retention is not None:
                cursor = await db.execute(
                    "DELETE FROM greenroom_spans WHERE start_at < ?",
                    (time.time() - self._retention,),
                )
                deleted += max(0, cursor.rowcount)
            if self._max_spans is not None:
                rows = list(await db.execute_fetchall("SELECT count(*) FROM greenroom_spans"))
                excess = int(rows[0][0]) - self._max_spans
                if excess > 0:
                    cursor = await db.execute(
                        "DELETE FROM greenroom_spans WHERE span_id IN (SELECT span_id FROM "
                        "greenroom_spans ORDER BY start_at ASC LIMIT ?)",
                        (excess,),
                    )
                    deleted += max(0, cursor.rowcount)
            rows = list(await db.execute_fetchall("SELECT count(*) FROM greenroom_spans"))
            self._count = int(rows[0][0])
        except sqlite3.Error as error:
            if raise_errors:
                raise TraceStoreUnavailable(self._path, "apply retention", str(error)) from error
            logger.bind(event="trace_prune_failed").warning(
                "trace store {path}: retention failed: {error}", path=self._path, error=error
            )
        self._pruned += deleted
        return deleted

    # -- reading -----------------------------------------------------------------

    async def recent_traces(self, limit: int = 20) -> list[TraceSummary]:
        """The ``limit`` traces whose root span started last, newest first.

        A trace shows once its root span is written (a root ends after its
        children, so a trace in progress may not be listed yet). Raises
        :class:`UsageError` for a ``limit`` that is not an int from 0 to
        2**63 - 1 and :class:`TraceStoreUnavailable` when the read fails.
        """
        return await recent_traces(self._reading(), self._path, limit)

    async def spans(self, trace_id: int) -> list[Span]:
        """Every stored span of one trace, by start time (``[]`` for an unknown trace).

        Rows are decoded totally: values that cannot be read show as markers
        (see :func:`~greenroom.trace._rows.span_of_stored_row`). Raises
        :class:`TraceStoreUnavailable` when the read fails.
        """
        return await trace_spans(self._reading(), self._path, trace_id)

    async def find_trace(self, prefix: str) -> list[int]:
        """Trace ids whose 16-digit hex form starts with ``prefix`` (at most 2: enough to tell
        a unique match from an ambiguous one).

        Raises :class:`UsageError` when ``prefix`` is not 1 to 16 hex digits,
        :class:`TraceStoreUnavailable` when the read fails.
        """
        return await find_trace(self._reading(), self._path, prefix)

    def _reading(self) -> aiosqlite.Connection:
        self._check_open()
        assert self._reader is not None
        return self._reader

    def statistics(self) -> TraceStoreStatistics:
        """A snapshot of the counters."""
        return TraceStoreStatistics(
            written=self._written,
            batches=self._batches,
            failed=self._failed,
            pruned=self._pruned,
            export_errors=self._export_errors,
            dropped=self.tracer.statistics().dropped,
        )

    def _check_open(self) -> None:
        if self._writer is None or self._reader is None:
            raise UsageError(f"{self!r} is not open; use `async with SqliteTraceStore(...)`")
