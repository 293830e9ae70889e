"""SqliteStore: a durable store in one sqlite file, with group commit."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable
from types import TracebackType
from typing import Literal, Self, TypeVar, cast

import aiosqlite
import anyio
import anyio.abc

from greenroom._errors import UsageError
from greenroom.store._errors import StoreClosed, StoreUnavailable
from greenroom.store._group_commit import GroupCommit, Op, SqliteStoreStatistics
from greenroom.store._migrations import SchemaTooNew, migrate
from greenroom.store._protocol import check_expected
from greenroom.store._readset import ReadEntry
from greenroom.store._record import Tombstone, Versioned, decode_value, encode_value
from greenroom.store._scope import Scope, check_key
from greenroom.store._sql import MAX_PAIRS, READ, SCAN, SCAN_ALL, padded_versions_query, prefix_end
from greenroom.store._watch import Sink, Watch, WatchHub, open_watch

__all__ = ["SqliteStore", "SqliteStoreStatistics"]

T = TypeVar("T")

_Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


class SqliteStore:
    """A :class:`Store` in an sqlite file: durable, shared by the tasks of this process.

    The file is opened in WAL mode with one writer connection and one
    reader connection (each an aiosqlite thread). Writes from all tasks are
    queued and committed in groups: one transaction per batch of up to
    ``max_batch`` writes, a few thread hops per batch rather than per
    write; each write returns only after its transaction committed. With
    ``synchronous="NORMAL"`` (the default) a committed write survives the
    process being killed; ``"FULL"`` also survives power loss, at an fsync
    per commit. Values are stored as msgpack; the schema is versioned in a
    table and migrated on open.

    Use as ``async with SqliteStore(path) as store:``; :meth:`aclose` (or
    leaving the block) commits the queued writes, then closes. Open and close
    in the same task. Watches see the writes made through this object, not
    those of other processes sharing the file (a later change after such a
    write shows up as a ``WatchGap`` with reason ``"version_skipped"``).

    Raises :class:`UsageError` for bad options; opening raises
    :class:`StoreUnavailable` when the file cannot be opened or its schema is
    newer than this greenroom knows.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: _Synchronous = "NORMAL",
        max_batch: int = 256,
        busy_timeout: float = 5.0,
    ) -> None:
        if str(path) in ("", ":memory:") or str(path).startswith("file::memory:"):
            raise UsageError(
                "SqliteStore needs a file path (it opens two connections, which an "
                "in-memory database cannot share); use MemoryStore for memory"
            )
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise UsageError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        if type(max_batch) is not int or not 1 <= max_batch <= 4096:
            raise UsageError(f"max_batch must be an int from 1 to 4096, got {max_batch!r}")
        if busy_timeout < 0:
            raise UsageError(f"busy_timeout is in seconds and >= 0, got {busy_timeout!r}")
        self._path = os.fspath(path)
        self._synchronous = synchronous
        self._busy_ms = int(busy_timeout * 1000)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._closing = False
        self._hub = WatchHub()
        self._commit = GroupCommit(repr(self), self._hub, max_batch)

    def __repr__(self) -> str:
        return f"SqliteStore({self._path!r})"

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._writer is not None or self._closing:
            raise UsageError(f"{self!r} is open or closed already; make a new SqliteStore")
        try:
            self._writer = await aiosqlite.connect(self._path, isolation_level=None)
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._writer.execute(f"PRAGMA synchronous = {self._synchronous}")
            await self._writer.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            await migrate(self._writer)
            self._reader = await aiosqlite.connect(self._path, isolation_level=None)
            await self._reader.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            await self._reader.execute("PRAGMA query_only = ON")
            self._commit.db = self._writer
        except (sqlite3.Error, SchemaTooNew) as error:
            await self._close_connections()
            reason = (
                f"its schema version {error.found} is newer than this greenroom knows "
                f"({error.known}); upgrade greenroom"
                if isinstance(error, SchemaTooNew)
                else str(error)
            )
            raise StoreUnavailable(repr(self), "open", reason) from error
        except BaseException:
            await self._close_connections()
            raise
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        await self._task_group.start(self._commit.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._task_group is None:
            self._closing = True
            return None
        task_group, self._task_group = self._task_group, None
        self._closing = True
        self._commit.close()
        try:
            return await task_group.__aexit__(exc_type, exc, tb)
        finally:
            self._hub.close_all()
            await self._close_connections()

    async def aclose(self) -> None:
        """Commit the queued writes, close every watch and both connections. Idempotent.

        Call it from the task that opened the store.
        """
        await self.__aexit__(None, None, None)

    async def _close_connections(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            for db in (self._reader, self._writer):
                if db is not None:
                    with contextlib.suppress(sqlite3.Error):
                        await db.close()
        self._reader = self._writer = None

    def statistics(self) -> SqliteStoreStatistics:
        """Counters of the group commit since the store was opened."""
        return self._commit.statistics()

    def _reader_for(self, operation: str) -> aiosqlite.Connection:
        if self._reader is None or self._closing:
            raise StoreClosed("SqliteStore", operation)
        return self._reader

    # -- reads -----------------------------------------------------------------

    async def read(self, scope: Scope[T], key: str) -> Versioned[T] | Tombstone | None:
        """See :meth:`Store.read`."""
        db = self._reader_for("read")
        check_key(scope, key)
        try:
            rows = await db.execute_fetchall(READ, (scope.name, key))
        except sqlite3.Error as error:
            raise StoreUnavailable(repr(self), "read", str(error)) from error
        for version, data, updated_at, updated_by, trace_id in rows:
            if data is None:
                return Tombstone(
                    version=version, updated_at=updated_at, updated_by=updated_by, trace_id=trace_id
                )
            return Versioned(
                value=decode_value(scope, key, version, data),
                version=version,
                updated_at=updated_at,
                updated_by=updated_by,
                trace_id=trace_id,
            )
        return None

    async def get(self, scope: Scope[T], key: str) -> Versioned[T] | None:
        """The live record of ``key`` (None: never written, or deleted); raises as ``read``."""
        record = await self.read(scope, key)
        return record if isinstance(record, Versioned) else None

    async def scan(
        self, scope: Scope[T], prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, Versioned[T]]]:
        """See :meth:`Store.scan`."""
        db = self._reader_for("scan")
        end = prefix_end(prefix)
        cap = -1 if limit is None else limit
        try:
            if end is None:
                rows = await db.execute_fetchall(SCAN_ALL, (scope.name, prefix, cap))
            else:
                rows = await db.execute_fetchall(SCAN, (scope.name, prefix, end, cap))
        except sqlite3.Error as error:
            raise StoreUnavailable(repr(self), "scan", str(error)) from error
        return [
            (
                key,
                Versioned(
                    value=decode_value(scope, key, version, data),
                    version=version,
                    updated_at=updated_at,
                    updated_by=updated_by,
                    trace_id=trace_id,
                ),
            )
            for key, version, data, updated_at, updated_by, trace_id in rows
        ]

    async def check_fresh(self, reads: Iterable[ReadEntry]) -> tuple[ReadEntry, ...]:
        """See :meth:`Store.check_fresh`. One query per 256 distinct keys."""
        db = self._reader_for("check_fresh")
        entries = list(reads)
        pairs = list(dict.fromkeys((e.scope, e.key) for e in entries))
        current: dict[tuple[str, str], int] = {}
        try:
            for start in range(0, len(pairs), MAX_PAIRS):
                sql, params = padded_versions_query(pairs[start : start + MAX_PAIRS])
                for scope, key, version, _live in await db.execute_fetchall(sql, params):
                    current[scope, key] = version
        except sqlite3.Error as error:
            raise StoreUnavailable(repr(self), "check_fresh", str(error)) from error
        return tuple(e for e in entries if current.get((e.scope, e.key), 0) != e.version)

    async def watch(
        self,
        scope: Scope[object],
        *,
        key: str | None = None,
        prefix: str | None = None,
        sink: Sink,
        since: int | None = None,
    ) -> Watch:
        """See :meth:`Store.watch`."""
        self._reader_for("watch")
        return await open_watch(self._hub, self.read, scope, key, prefix, sink, since)

    # -- writes ----------------------------------------------------------------

    async def write(
        self,
        scope: Scope[T],
        key: str,
        value: T,
        *,
        expected: int | None = None,
        writer: str | None = None,
        trace_id: str | None = None,
    ) -> Versioned[T]:
        """See :meth:`Store.write`.

        Cancelled while waiting: if its batch had not started the write is
        withdrawn, otherwise it completes (or conflicts) without the caller.
        """
        self._reader_for("write")
        check_key(scope, key)
        check_expected(expected)
        data, checked = encode_value(scope, key, value)
        op = Op(scope.name, key, data, checked, expected, writer, trace_id)
        await self._commit.submit(op)
        return cast("Versioned[T]", op.result)

    async def delete(
        self,
        scope: Scope[object],
        key: str,
        *,
        expected: int | None = None,
        writer: str | None = None,
        trace_id: str | None = None,
    ) -> Tombstone | None:
        """See :meth:`Store.delete`; cancellation works as for :meth:`write`."""
        self._reader_for("delete")
        check_key(scope, key)
        check_expected(expected)
        op = Op(scope.name, key, None, None, expected, writer, trace_id)
        await self._commit.submit(op)
        return op.result if isinstance(op.result, Tombstone) else None
