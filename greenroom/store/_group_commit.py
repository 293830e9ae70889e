"""Group commit: the writes of many tasks decided and committed in one transaction."""

from __future__ import annotations

import contextlib
import sqlite3
import time

import aiosqlite
import anyio
import anyio.abc
import msgspec

from greenroom.store._errors import StoreClosed, StoreUnavailable, VersionConflict
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._sql import MAX_PAIRS, UPSERT, padded_versions_query
from greenroom.store._watch import StateChanged, WatchHub

__all__ = ["GroupCommit", "Op", "SqliteStoreStatistics"]


class SqliteStoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`SqliteStore` since it was opened.

    ``commits``: write transactions committed; ``writes``: write and delete
    calls decided in them (committed or refused with a conflict);
    ``largest_batch``: the most writes decided in one transaction.
    """

    commits: int
    writes: int
    largest_batch: int


class Op:
    """One queued write or delete (``data is None``) and, once decided, its outcome."""

    __slots__ = (
        "data",
        "done",
        "error",
        "expected",
        "key",
        "result",
        "scope",
        "taken",
        "trace_id",
        "value",
        "version",
        "writer",
    )

    def __init__(
        self,
        scope: str,
        key: str,
        data: bytes | None,
        value: object,
        expected: int | None,
        writer: str | None,
        trace_id: str | None,
    ) -> None:
        self.scope = scope
        self.key = key
        self.data = data  # None: a delete
        self.value = value
        self.expected = expected
        self.writer = writer
        self.trace_id = trace_id
        self.done = anyio.Event()
        self.taken = False
        self.version = 0
        self.result: Versioned[object] | Tombstone | None = None
        self.error: Exception | None = None


class GroupCommit:
    """The one writer of a sqlite store: a queue of ops and the task that commits them.

    Each batch is four thread hops, however many writes it holds: BEGIN
    IMMEDIATE, one query for the current versions of its keys, one
    executemany of the new rows, COMMIT. Writes are decided in the order
    they were queued; watchers are told after the commit, in that order.
    """

    def __init__(self, name: str, hub: WatchHub, max_batch: int) -> None:
        self.db: aiosqlite.Connection | None = None
        self._name = name
        self._hub = hub
        self._max_batch = max_batch
        self._pending: list[Op] = []
        self._wakeup = anyio.Event()
        self._closing = False
        self._commits = 0
        self._writes = 0
        self._largest = 0

    def close(self) -> None:
        """Accept no more ops; :meth:`run` returns once the queue is drained."""
        self._closing = True
        self._wakeup.set()

    def statistics(self) -> SqliteStoreStatistics:
        """Counters since the store opened."""
        return SqliteStoreStatistics(
            commits=self._commits, writes=self._writes, largest_batch=self._largest
        )

    async def submit(self, op: Op) -> None:
        """Queue ``op`` and wait until its batch is decided; raise its error if it has one.

        Cancelled before its batch starts, the op is withdrawn; after, it
        completes without the caller.
        """
        self._pending.append(op)
        self._wakeup.set()
        try:
            await op.done.wait()
        except BaseException:
            if not op.taken:
                self._pending.remove(op)
            raise
        if op.error is not None:
            raise op.error

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Commit queued ops batch by batch until closed and drained; start with ``tg.start``."""
        task_status.started()
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wakeup = anyio.Event()
                    await self._wakeup.wait()
                    continue
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                for op in batch:
                    op.taken = True
                # A batch that has begun always ends: commit or roll back, and
                # answer every writer in it, even if the store is cancelled.
                with anyio.CancelScope(shield=True):
                    await self._commit(batch)
        finally:
            left, self._pending = self._pending, []
            for op in left:
                op.error = StoreClosed(self._name, "write")
                op.done.set()

    async def _commit(self, batch: list[Op]) -> None:
        db = self.db
        assert db is not None
        changed: list[Op] = []
        now = time.time()
        failure: BaseException | None = None
        try:
            await db.execute("BEGIN IMMEDIATE")
            try:
                changed = await self._decide(db, batch, now)
                await db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await db.execute("ROLLBACK")
                raise
        except BaseException as error:
            failure = error
            if not isinstance(error, Exception):
                raise
        finally:
            self._commits += failure is None
            self._writes += len(batch)
            self._largest = max(self._largest, len(batch))
            if failure is None:
                for op in changed:
                    self._finish(op, now)
            else:
                reason = f"{type(failure).__name__}: {failure}; the batch was rolled back"
                for op in batch:
                    op.error = StoreUnavailable(self._name, "write", reason)
                    op.error.__cause__ = failure
            for op in batch:
                op.done.set()

    async def _decide(self, db: aiosqlite.Connection, batch: list[Op], now: float) -> list[Op]:
        """Decide each write of ``batch`` in order against the current versions; stage the rows."""
        pairs = list(dict.fromkeys((op.scope, op.key) for op in batch))
        current: dict[tuple[str, str], tuple[int, bool]] = {}
        for start in range(0, len(pairs), MAX_PAIRS):
            sql, params = padded_versions_query(pairs[start : start + MAX_PAIRS])
            for scope, key, version, live in await db.execute_fetchall(sql, params):
                current[scope, key] = (version, bool(live))
        rows: dict[tuple[str, str], tuple[object, ...]] = {}
        changed: list[Op] = []
        for op in batch:
            ident = (op.scope, op.key)
            version, live = current.get(ident, (0, False))
            if op.expected is not None and op.expected != version:
                op.error = VersionConflict(op.scope, op.key, op.expected, version)
                continue
            if op.data is None and not live:
                continue  # nothing to delete: no new version
            version += 1
            current[ident] = (version, op.data is not None)
            rows[ident] = (op.scope, op.key, version, op.data, now, op.writer, op.trace_id)
            op.version = version
            changed.append(op)
        if rows:
            await db.executemany(UPSERT, list(rows.values()))
        return changed

    def _finish(self, op: Op, now: float) -> None:
        deleted = op.data is None
        op.result = (
            Tombstone(
                version=op.version, updated_at=now, updated_by=op.writer, trace_id=op.trace_id
            )
            if deleted
            else Versioned(
                value=op.value,
                version=op.version,
                updated_at=now,
                updated_by=op.writer,
                trace_id=op.trace_id,
            )
        )
        if self._hub.active:
            self._hub.publish(
                StateChanged(
                    scope=op.scope,
                    key=op.key,
                    version=op.version,
                    deleted=deleted,
                    value=op.value,
                    updated_at=now,
                    updated_by=op.writer,
                    trace_id=op.trace_id,
                )
            )
