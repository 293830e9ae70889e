"""The one writer of a durable mailbox database: group commit of every change.

Puts, acks, retries, lease releases, dead letters and fetches of every
mailbox of a :class:`SqliteMailboxes` are queued here and applied by one
task, in one transaction per cycle: ``executemany`` per kind of change (a
thread hop each, however many rows) and one commit. While a cycle's hops
are in flight the next cycle's work piles up, so batches grow with load
without a timer. After the commit, waiting senders are released, new
messages go into their mailboxes' buffers and fetched rows are delivered.

When a cycle fails it is rolled back, and what happens next depends on the
error (see ``_sqlite_failure``):

* the database failed (``sqlite3.OperationalError``: locked, disk full, I/O):
  the cycle's awaited puts fail with :class:`MailboxUnavailable`, everything
  else (fire-and-forget puts included) is retried with backoff, the changes
  that need no space (acks, attempts, releases) first and on their own, so
  they get through a full disk;
* some rows cannot be written (a value sqlite cannot bind, a constraint, a
  bug in reading one row): the cycle is applied again row by row, each bad
  row alone is refused (its put fails with :class:`InvalidMessage`, a
  fire-and-forget one becomes a dead letter; a bad ack or letter is logged
  and dropped) and the rest is committed; should that fail too, the error
  is logged, the cycle's puts fail with :class:`MailboxUnavailable` and its
  other changes are dropped (acks dropped mean redelivery, never loss);
* the file is corrupt: the writer stops for good (``_sqlite_failure.Stop``).

The writer task itself never dies of one bad item.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiosqlite
import anyio
import anyio.abc

from greenroom._errors import ErrorInfo, InvalidMessage, MailboxClosed
from greenroom.mailbox._deadletter import DeadLetter
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import MailboxUnavailable
from greenroom.mailbox._sqlite_apply import Applied, Batch, apply
from greenroom.mailbox._sqlite_columns import shown
from greenroom.mailbox._sqlite_failure import Stop, isolatable
from greenroom.mailbox._sqlite_leases import Leases
from greenroom.mailbox._sqlite_rows import letter_row, message_row
from greenroom.mailbox._sqlite_slot import Chunk, Slot
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.mailbox._sqlite_mailbox import SqliteMailbox

__all__ = ["Writer"]

AdminFn = Callable[[aiosqlite.Connection], Awaitable[Any]]


class Writer:
    """The queues of changes and the task that commits them (see the module docstring)."""

    def __init__(
        self,
        name: str,
        path: str,
        leases: Leases,
        batch: int,
        slots: dict[str, Slot],
        *,
        dedupe_window: float = 3600.0,
    ) -> None:
        self.name = name
        self.path = path
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
        self.stop = Stop(name, path, slots)
        self.closing = False
        self.closed = False
        self.tick_due = False
        self.commits = 0
        self.rows = 0
        self.largest = 0
        self._wakeup: asyncio.Future[None] | None = None
        self._failures = 0
        self._split = False  # after a failed commit: acks, attempts, releases first, alone

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
            raise self.stop.failure or MailboxClosed(box.name)
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
        """Run ``fn(db)`` in the writer task, between cycles; its result.

        Raises:
            MailboxCorrupted: the database was found corrupt (before or by ``fn``).
            MailboxClosed: the writer has stopped.
        """
        if self.closed:
            raise self.stop.failure or MailboxClosed(self.name)
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
        """Commit cycles until closed and drained, stopped or given up; start with ``tg.start``."""
        task_status.started()
        loop = asyncio.get_running_loop()
        stop = self.stop
        try:
            while not stop.stopped:
                if not self._has_work():
                    if self.closing:
                        break
                    self._wakeup = loop.create_future()
                    await self._wakeup
                    continue
                with anyio.CancelScope(shield=True):
                    while self.admin and not stop.stopped:
                        await self._admin(*self.admin.popleft())
                    try:
                        ok = stop.stopped or await self._cycle()
                    except Exception as error:  # a bug of the writer's own: say so, go on
                        logger.bind(event="mailbox_internal_error").opt(exception=error).error(
                            "{name}: the mailbox writer failed: {error!r}",
                            name=self.name,
                            error=error,
                        )
                        ok = False
                if not ok:
                    self._failures += 1
                    await stop.pause(min(0.02 * 2 ** min(self._failures, 6), 1.0))
            if stop.failure is None:
                with anyio.CancelScope(shield=True):
                    await self._finish(quick=stop.abandoned)
        finally:
            self.closed = True
            stop.count_unwritten(self)
            self._fail_queued()
            stop.ended.set()

    def _fail_queued(self) -> None:
        stop = self.stop
        for chunk in self.chunks:
            for box, envelope, _, done in chunk.items:
                box._dropped(envelope)
                if done is not None and not done.done():
                    done.set_exception(stop.put_error(box.name))
        self.chunks.clear()
        for _, future in self.admin:
            if not future.done():
                future.set_exception(stop.failure or MailboxClosed(self.name))
        self.admin.clear()

    async def _admin(self, fn: AdminFn, future: asyncio.Future[Any]) -> None:
        db = self.db
        assert db is not None
        try:
            result = await fn(db)
        except BaseException as error:
            await self._rollback()
            if isinstance(error, Exception) and self.stop.corrupt(error):
                error = self.stop.failure or error
            if not future.done():
                future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            if not future.done():
                future.set_result(result)

    async def _rollback(self) -> None:
        db = self.db
        assert db is not None
        try:
            await db.rollback()
        except sqlite3.Error as error:
            self.stop.corrupt(error)

    async def _finish(self, quick: bool) -> None:
        """Free this holder's leases; ``quick`` (past the close deadline): without waiting."""
        db = self.db
        assert db is not None
        try:
            if quick:  # fails at once if another connection holds the lock
                await db.execute("PRAGMA busy_timeout = 0")
            await self.leases.release_all(db)
        except sqlite3.Error as error:
            self.stop.corrupt(error)
        else:
            self.stop.leases_released = True

    async def _cycle(self) -> bool:
        """One batch, applied and committed; whether it was (``False``: back off)."""
        split = self._split
        batch = self._take()
        try:
            applied = await apply(self, batch, careful=False)
        except Exception as error:
            await self._rollback()
            if not isolatable(error):
                self._failed(error, batch)
                return False
            logger.bind(event="mailbox_commit_retried").opt(exception=error).warning(
                "{name}: a mailbox commit failed on a row ({error}); retrying it row by row",
                name=self.name,
                error=error,
            )
            try:
                applied = await apply(self, batch, careful=True)
            except Exception as again:
                await self._rollback()
                if not isolatable(again):
                    self._failed(again, batch)
                else:
                    self._drop(batch, again)
                return False
        if not split:  # the acks alone getting through says nothing of the rest
            self._failures = 0
        try:
            self._committed(batch, applied)
        except Exception as error:
            self._settle_anyway(batch, applied, error)
        return True

    def _take(self) -> Batch:
        batch = Batch()
        batch.acks, self.acks = self.acks, []
        batch.attempts, self.attempts = self.attempts, []
        batch.releases, self.releases = self.releases, []
        if self._split:
            return batch  # what needs no new pages: it gets through a full disk
        batch.remembered, self.remembered = self.remembered, []
        batch.letters, self.letters = self.letters, []
        batch.tick, self.tick_due = self.tick_due, False
        wanted = batch.wanted = self.wanted
        self.wanted = {}
        chunk = batch.chunk = self.chunks.popleft() if self.chunks else None
        if chunk is not None:
            owner = self.owner
            chunk.taken = True
            for box, envelope, data, _ in chunk.items:
                mirror = box._mirror
                if not mirror and not box._closed and id(box) not in wanted:
                    box._fetching = True
                    wanted[id(box)] = box
                batch.mirrored.append(mirror)
                batch.rows.append(message_row(box.name, envelope, data, owner if mirror else None))
        return batch

    # -- after the commit --------------------------------------------------

    def _committed(self, batch: Batch, applied: Applied) -> None:
        self.commits += 1
        self._split = False
        size = len(batch.rows) + len(batch.acks)
        self.rows += size
        self.largest = max(self.largest, size)
        if batch.chunk is not None:
            self._settle(batch.chunk, batch.mirrored, applied)
        for box, envelopes, more, gen in applied.fetched:
            self._deliver(box, envelopes, more, gen)
        for box, _ in applied.poisoned:
            box._shed(1)
        for box in applied.skipped:
            box._fetching = False  # fetched again only when something new wants it

    def _settle(self, chunk: Chunk, mirrored: list[bool], applied: Applied) -> None:
        inserted = applied.inserted
        refused = applied.refused
        for index, (box, envelope, _, done) in enumerate(chunk.items):
            if index in refused:
                box._dropped(envelope)
                self._refuse(box, envelope, refused[index], done)
                continue
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

    def _settle_anyway(self, batch: Batch, applied: Applied, error: Exception) -> None:
        """Acting on a commit failed (a bug): no sender of the batch may be left waiting."""
        logger.bind(event="mailbox_internal_error").opt(exception=error).error(
            "{name}: the mailbox writer failed after a commit: {error!r}",
            name=self.name,
            error=error,
        )
        chunk = batch.chunk
        for index, (box, envelope, _, done) in enumerate(chunk.items if chunk else ()):
            if done is not None and not done.done():
                why = applied.refused.get(index)
                if why is None:
                    done.set_result(None)  # it is on disk
                else:
                    self._refuse(box, envelope, why, done)

    def _refuse(
        self, box: SqliteMailbox, envelope: Envelope, why: str, done: asyncio.Future[None] | None
    ) -> None:
        """A put whose row sqlite cannot store: its sender's error, or a dead letter."""
        error = InvalidMessage(
            type(envelope.body).__qualname__, f"its envelope cannot be stored in {self.path}: {why}"
        )
        if done is not None and not done.done():
            done.set_exception(error)
            return
        logger.bind(actor=box.name, event="put_refused").warning(
            "{actor}: a message put without waiting cannot be stored and is dead-lettered: {why}",
            actor=box.name,
            why=why,
        )
        info = ErrorInfo.from_exception(error, with_traceback=False)
        letter = DeadLetter(envelope=envelope, actor=box.name, reason="invalid_message", error=info)
        self.letters.append(letter_row(letter))

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

    # -- after a failure -----------------------------------------------------

    def _failed(self, error: Exception, batch: Batch) -> None:
        """The database failed and the cycle rolled back: fail the awaited puts, retry the rest.

        A corrupt file stops the writer instead (``Stop.corrupt``).
        """
        if self.stop.corrupt(error):
            self._fail_puts(batch.chunk, self.stop.failure)
            return
        self.stop.last_error = error
        self._split = True
        logger.bind(event="mailbox_commit_failed").opt(exception=error).error(
            "{name}: a mailbox commit failed and was rolled back: {error}",
            name=self.name,
            error=error,
        )
        self.acks[:0] = batch.acks
        self.remembered[:0] = batch.remembered
        self.attempts[:0] = batch.attempts
        self.releases[:0] = batch.releases
        self.letters[:0] = batch.letters
        self.tick_due = self.tick_due or batch.tick
        for box in batch.wanted.values():
            box._fetching = False
            if not box._closed:
                box._want_rows()
        failure = MailboxUnavailable(self.path, "commit", str(error))
        failure.__cause__ = error
        chunk = batch.chunk
        if chunk is None:
            return
        # Fire-and-forget puts have no one to tell: they are retried, ahead of
        # the newer ones, until they commit or the close gives up on them.
        kept = Chunk()
        for item in chunk.items:
            box, envelope, _, done = item
            if done is None:
                kept.items.append(item)
                continue
            box._dropped(envelope)
            if not done.done():
                done.set_exception(failure)
        if kept.items:
            self.chunks.appendleft(kept)

    def _drop(self, batch: Batch, error: Exception) -> None:
        """Applying the cycle row by row failed too: a bug. Say so, fail its puts, go on."""
        logger.bind(event="mailbox_internal_error").opt(exception=error).error(
            "{name}: a mailbox commit failed on an internal error, even row by row; dropped: "
            "{puts} put(s) (awaited ones failed, the others lost), {acks} ack(s) (delivered "
            "again), {letters} dead letter(s)",
            name=self.name,
            puts=len(batch.rows),
            acks=len(batch.acks),
            letters=len(batch.letters),
        )
        for box in batch.wanted.values():
            box._fetching = False
        failure = MailboxUnavailable(
            self.path, "commit", f"internal error {type(error).__name__}: {shown(error)}"
        )
        failure.__cause__ = error
        self._fail_puts(batch.chunk, failure)

    def _fail_puts(self, chunk: Chunk | None, failure: Exception | None) -> None:
        if chunk is None:
            return
        for box, envelope, _, done in chunk.items:
            box._dropped(envelope)
            if done is not None and not done.done():
                done.set_exception(failure or MailboxClosed(box.name))
