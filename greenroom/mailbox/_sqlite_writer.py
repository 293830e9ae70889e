"""The one writer of a durable mailbox database: group commit of every change.

Puts, acks, retries, lease releases, dead letters and fetches of every
mailbox of a :class:`SqliteMailboxes` are queued here and applied by one
task, in one transaction per cycle: ``executemany`` per kind of change (a
thread hop each, however many rows) and one commit. While a cycle's hops
are in flight the next cycle's work piles up, so batches grow with load
without a timer. After the commit, waiting senders are released, new
messages go into their mailboxes' buffers and fetched rows are delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiosqlite
import anyio
import anyio.abc

from greenroom._errors import MailboxClosed
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import MailboxUnavailable
from greenroom.mailbox._sqlite_leases import Leases
from greenroom.mailbox._sqlite_rows import Poison, envelope_from_row, message_row, poison_letter
from greenroom.mailbox._sqlite_schema import (
    FETCH,
    FORGET_ACKED,
    INSERT,
    INSERT_LETTER,
    MESSAGES,
    REMEMBER,
)
from greenroom.mailbox._sqlite_slot import Chunk, Slot
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.mailbox._sqlite_mailbox import SqliteMailbox

__all__ = ["Writer"]

DELETE = f"DELETE FROM {MESSAGES} WHERE id = ?"
SET_ATTEMPT = f"UPDATE {MESSAGES} SET attempt = ? WHERE id = ?"
RELEASE = f"UPDATE {MESSAGES} SET owner = NULL, attempt = attempt + ? WHERE id = ?"

AdminFn = Callable[[aiosqlite.Connection], Awaitable[Any]]


class Writer:
    """The queues of changes and the task that commits them (see the module docstring)."""

    def __init__(
        self,
        name: str,
        leases: Leases,
        batch: int,
        slots: dict[str, Slot],
        *,
        dedupe_window: float = 3600.0,
    ) -> None:
        self.name = name
        self.dedupe_window = dedupe_window
        self.leases = leases
        self.owner = leases.owner
        self.batch = batch
        self.slots = slots
        self.db: aiosqlite.Connection | None = None
        self.chunks: deque[Chunk] = deque()
        self.acks: list[tuple[int]] = []
        self.remembered: list[tuple[int, str, float]] = []  # acked keyed tells: id, actor, at
        self.attempts: list[tuple[int, int]] = []
        self.releases: list[tuple[int, int]] = []
        self.letters: list[tuple[Any, ...]] = []
        self.wanted: dict[int, SqliteMailbox] = {}
        self.admin: deque[tuple[AdminFn, asyncio.Future[Any]]] = deque()
        self.closing = False
        self.closed = False
        self.tick_due = False
        self.commits = 0
        self.rows = 0
        self.largest = 0
        self._wakeup: asyncio.Future[None] | None = None
        self._failures = 0

    # -- queueing (called from the event loop, never blocks) ---------------

    def wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def enqueue(
        self,
        box: SqliteMailbox,
        envelope: Envelope,
        data: bytes,
        done: asyncio.Future[None] | None,
    ) -> Chunk:
        if self.closed:
            raise MailboxClosed(box.name)
        chunks = self.chunks
        if chunks and len(chunks[-1].items) < self.batch:
            chunk = chunks[-1]
        else:
            chunk = Chunk()
            chunks.append(chunk)
        chunk.items.append((box, envelope, data, done))
        box._hold(envelope.id)
        box._slot.count += 1
        self.wake()
        return chunk

    def withdraw(self, chunk: Chunk, envelope: Envelope) -> None:
        for index, item in enumerate(chunk.items):
            if item[1] is envelope:
                del chunk.items[index]
                item[0]._dropped(envelope)
                return

    def want(self, box: SqliteMailbox) -> None:
        self.wanted[id(box)] = box
        self.wake()

    def mark_loose(self, actor: str, added: int = 0) -> None:
        """Free rows of ``actor`` appeared on disk (``added`` of them new): fetch them."""
        slot = self.slots.get(actor)
        if slot is None:
            slot = self.slots[actor] = Slot(actor)
        slot.count += added
        slot.make_loose()
        box = slot.mailbox
        if box is not None and not box._fetching:
            box._want_rows()

    async def run_admin(self, fn: AdminFn) -> Any:
        """Run ``fn(db)`` in the writer task, between cycles; its result."""
        if self.closed:
            raise MailboxClosed(self.name)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.admin.append((fn, future))
        self.wake()
        return await future

    def _has_work(self) -> bool:
        return bool(
            self.chunks
            or self.acks
            or self.remembered
            or self.attempts
            or self.releases
            or self.letters
            or self.wanted
            or self.admin
            or self.tick_due
        )

    # -- the task ------------------------------------------------------------

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Commit cycles until closed and drained; start with ``tg.start``."""
        task_status.started()
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._has_work():
                    if self.closing:
                        break
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                with anyio.CancelScope(shield=True):
                    while self.admin:
                        await self._admin(*self.admin.popleft())
                    ok = await self._cycle()
                if not ok:
                    self._failures += 1
                    await anyio.sleep(min(0.02 * 2**self._failures, 1.0))
                else:
                    self._failures = 0
            with anyio.CancelScope(shield=True):
                await self._finish()
        finally:
            self.closed = True
            self._fail_queued()

    def _fail_queued(self) -> None:
        for chunk in self.chunks:
            for box, envelope, _, done in chunk.items:
                box._dropped(envelope)
                if done is not None and not done.done():
                    done.set_exception(MailboxClosed(box.name))
        self.chunks.clear()
        for _, future in self.admin:
            if not future.done():
                future.set_exception(MailboxClosed(self.name))
        self.admin.clear()

    async def _admin(self, fn: AdminFn, future: asyncio.Future[Any]) -> None:
        db = self.db
        assert db is not None
        try:
            result = await fn(db)
        except BaseException as error:
            with contextlib.suppress(sqlite3.Error):
                await db.rollback()
            if not future.done():
                future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            if not future.done():
                future.set_result(result)

    async def _finish(self) -> None:
        db = self.db
        assert db is not None
        with contextlib.suppress(sqlite3.Error):
            await self.leases.release_all(db)

    async def _cycle(self) -> bool:
        db = self.db
        assert db is not None
        owner = self.owner
        chunk = self.chunks.popleft() if self.chunks else None
        acks, self.acks = self.acks, []
        remembered, self.remembered = self.remembered, []
        attempts, self.attempts = self.attempts, []
        releases, self.releases = self.releases, []
        letters, self.letters = self.letters, []
        wanted, self.wanted = self.wanted, {}
        tick, self.tick_due = self.tick_due, False
        rows: list[tuple[Any, ...]] = []
        mirrored: list[bool] = []
        if chunk is not None:
            chunk.taken = True
            for box, envelope, data, _ in chunk.items:
                mirror = box._mirror
                if not mirror and not box._closed and id(box) not in wanted:
                    box._fetching = True
                    wanted[id(box)] = box
                mirrored.append(mirror)
                rows.append(message_row(box.name, envelope, data, owner if mirror else None))
        fetched: list[tuple[SqliteMailbox, list[Envelope], bool, int]] = []
        poisoned: list[tuple[SqliteMailbox, Envelope]] = []
        poison_rows: list[tuple[Any, ...]] = []
        inserted: list[bool] | None = None
        try:
            if acks:
                await db.executemany(DELETE, acks)
            if remembered:
                await db.executemany(REMEMBER, remembered)
            if attempts:
                await db.executemany(SET_ATTEMPT, attempts)
            if releases:
                await db.executemany(RELEASE, releases)
            if rows:
                cursor = await db.executemany(INSERT, rows)
                if cursor.rowcount != len(rows):
                    inserted = await self._which_inserted(db, rows, cursor.rowcount)
            if tick:
                for actor in await self.leases.maintain(db):
                    self.mark_loose(actor)
                await db.execute(FORGET_ACKED, (time.time() - self.dedupe_window,))
            for box in wanted.values():
                await self._fetch(db, box, fetched, poisoned, poison_rows)
            if poisoned:
                await db.executemany(DELETE, [(envelope.id,) for _, envelope in poisoned])
            if letters or poison_rows:
                await db.executemany(INSERT_LETTER, letters + poison_rows)
            await db.commit()
        except sqlite3.Error as error:
            with contextlib.suppress(sqlite3.Error):
                await db.rollback()
            self.remembered[:0] = remembered
            self._failed(error, chunk, acks, attempts, releases, letters, wanted)
            return False
        self.commits += 1
        size = len(rows) + len(acks)
        self.rows += size
        self.largest = max(self.largest, size)
        if chunk is not None:
            self._settle(chunk, mirrored, inserted)
        for box, envelopes, more, gen in fetched:
            self._deliver(box, envelopes, more, gen)
        for box, _ in poisoned:
            box._slot.count -= 1
            if box._putters:
                box._putters.wake()
        return True

    async def _which_inserted(
        self, db: aiosqlite.Connection, rows: list[tuple[Any, ...]], count: int
    ) -> list[bool]:
        # Rows inserted by one statement have the highest seqs of all rows
        # with their ids, so the newest `count` of those are the new ones.
        ids = [row[1] for row in rows]
        new = {
            ident
            for (ident,) in await db.execute_fetchall(
                f"SELECT id FROM {MESSAGES} WHERE id IN ({', '.join('?' * len(ids))}) "
                "ORDER BY seq DESC LIMIT ?",
                [*ids, count],
            )
        }
        flags = []
        for row in rows:
            flags.append(row[1] in new)
            new.discard(row[1])  # one id inserted once, by its first row
        return flags

    async def _fetch(
        self,
        db: aiosqlite.Connection,
        box: SqliteMailbox,
        fetched: list[tuple[SqliteMailbox, list[Envelope], bool, int]],
        poisoned: list[tuple[SqliteMailbox, Envelope]],
        poison_rows: list[tuple[Any, ...]],
    ) -> None:
        if box._closed:
            box._fetching = False
            return
        gen = box._slot.gen
        limit = self.batch
        rows = sorted(await db.execute_fetchall(FETCH, (self.owner, box.name, limit)))
        envelopes = []
        for row in rows:
            body = box._decoder.decode(box.name, row[10])
            if isinstance(body, Poison):
                envelope = envelope_from_row(box.name, row, row[10])
                poisoned.append((box, envelope))
                poison_rows.append(poison_letter(box.name, envelope, body))
                logger.bind(actor=box.name, event="poison_message", reason=body.reason).warning(
                    "{actor}: poison message {id} dead-lettered: {error}",
                    actor=box.name,
                    id=envelope.id,
                    error=body.error.message,
                )
            else:
                envelopes.append(envelope_from_row(box.name, row, body))
        fetched.append((box, envelopes, len(rows) == limit, gen))

    def _settle(self, chunk: Chunk, mirrored: list[bool], inserted: list[bool] | None) -> None:
        for index, (box, envelope, _, done) in enumerate(chunk.items):
            if inserted is not None and not inserted[index]:
                box._dropped(envelope)  # a duplicate of a row already on disk
            elif mirrored[index]:
                if box._closed:
                    self.releases.append((0, envelope.id))
                    box._slot.make_loose()
                else:
                    box._arrive(envelope)
            if done is not None and not done.done():
                done.set_result(None)

    def _deliver(self, box: SqliteMailbox, envelopes: list[Envelope], more: bool, gen: int) -> None:
        slot = box._slot
        if not more and slot.gen == gen:
            slot.loose = False
        if box._closed:
            self.releases.extend((0, envelope.id) for envelope in envelopes)
            if envelopes:
                slot.make_loose()
            return
        box._fetched(envelopes, more)

    def _failed(
        self,
        error: sqlite3.Error,
        chunk: Chunk | None,
        acks: list[tuple[int]],
        attempts: list[tuple[int, int]],
        releases: list[tuple[int, int]],
        letters: list[tuple[Any, ...]],
        wanted: dict[int, SqliteMailbox],
    ) -> None:
        """The cycle rolled back: retry what is idempotent, fail the puts."""
        logger.bind(event="mailbox_commit_failed").opt(exception=error).error(
            "{name}: a mailbox commit failed and was rolled back: {error}",
            name=self.name,
            error=error,
        )
        self.acks[:0] = acks
        self.attempts[:0] = attempts
        self.releases[:0] = releases
        self.letters[:0] = letters
        for box in wanted.values():
            box._fetching = False
            if not box._closed:
                box._want_rows()
        if chunk is None:
            return
        for box, envelope, _, done in chunk.items:
            box._dropped(envelope)
            if done is not None and not done.done():
                failure = MailboxUnavailable(self.name, "commit", str(error))
                failure.__cause__ = error
                done.set_exception(failure)
