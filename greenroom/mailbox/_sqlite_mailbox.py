"""SqliteMailbox: one actor's durable mailbox, fed by the shared writer of its factory.

Where a message is, at any moment: queued for the next group commit
(``put`` waits here), on disk leased to this process and in the local
buffer (``get_nowait`` takes from here, without I/O), handed out to the
consumer, then gone once the consumer acks and the delete commits. Messages
put while the buffer holds everything the actor has on disk are leased as
they are inserted and go straight into the buffer after their commit
(no read back); otherwise (a backlog, rows released by a previous
incarnation, a redrive) the mailbox fetches the oldest free rows in pages.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from greenroom._errors import MailboxClosed, MailboxFull, MessageTooLarge
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import MailboxUnavailable
from greenroom.mailbox._protocol import MailboxStatistics
from greenroom.mailbox._replies import LocalReplies
from greenroom.mailbox._senders import WaitingSenders
from greenroom.mailbox._sqlite_rows import BodyDecoder, encode_body
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.mailbox._sqlite_slot import Slot
    from greenroom.mailbox._sqlite_writer import Writer

__all__ = ["SqliteMailbox"]


class SqliteMailbox:
    """One actor's mailbox in a :class:`SqliteMailboxes` database. Made by its ``create``.

    Guarantees: at-least-once (a message leaves the database only when
    acked; one handed out and never acked is delivered again, with
    ``attempt`` incremented, after this mailbox closes or its process dies);
    FIFO per sender, across restarts; an envelope whose id is unacked in
    this mailbox already is not enqueued twice, nor a tell sent with an
    idempotency key (``Envelope.remember_after_ack``) whose id was acked
    within the factory's ``dedupe_window``; at most ``capacity`` unacked
    messages per actor on disk.

    ``put`` returns once the message is committed. ``offer`` and
    ``put_nowait`` are the fire-and-forget mode: they return as soon as the
    message is queued for the next group commit, which a crash in the next
    few milliseconds loses. ``ActorRef.tell`` waits for the commit;
    ``tell_nowait`` and timers do not.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_decoder",
        "_failure",
        "_fetching",
        "_get_total",
        "_held",
        "_high_water",
        "_listener",
        "_loop",
        "_max_bytes",
        "_out",
        "_put_total",
        "_putters",
        "_replies",
        "_slot",
        "_writer",
        "capacity",
        "name",
    )

    def __init__(
        self,
        name: str,
        capacity: int,
        writer: Writer,
        slot: Slot,
        decoder: BodyDecoder,
        max_bytes: int | None,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self._writer = writer
        self._slot = slot
        self._decoder = decoder
        self._max_bytes = max_bytes
        self._loop = asyncio.get_running_loop()
        self._buffer: deque[Envelope] = deque()
        self._replies = LocalReplies()  # reply futures of local asks, by envelope id
        self._out: dict[int, Envelope] = {}  # handed out, not yet acked
        self._held: set[int] = set()  # ids queued, buffered or handed out
        self._putters = WaitingSenders(lambda: self._slot.count < self.capacity)
        self._listener: Callable[[], None] | None = None
        self._closed = False
        self._failure: MailboxUnavailable | None = None
        self._fetching = False
        self._put_total = 0
        self._get_total = 0
        self._high_water = 0
        slot.mailbox = self
        if slot.loose:
            self._want_rows()

    def __repr__(self) -> str:
        return f"<SqliteMailbox {self.name} {self._slot.count}/{self.capacity}>"

    @property
    def durable(self) -> bool:
        """Always ``True``: a message is on disk once :meth:`put` returns."""
        return True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or its factory closed)."""
        return self._closed

    def __len__(self) -> int:
        """Unacked messages of this actor: on disk, queued, buffered or handed out.

        This is what ``capacity`` bounds, so unlike the memory mailbox's
        depth it counts the message being handled until it is acked.
        """
        return self._slot.count

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` whenever a message arrives in an empty buffer."""
        self._listener = listener

    # -- putting ----------------------------------------------------------

    def _encode(self, envelope: Envelope) -> bytes:
        data = encode_body(envelope.body)
        limit = self._max_bytes
        if limit is not None and len(data) > limit:
            raise MessageTooLarge(type(envelope.body).__qualname__, len(data), limit)
        return data

    def offer(self, envelope: Envelope) -> bool:
        """Queue for the next commit if there is room and no sender waits; else ``False``.

        Fire-and-forget: the message is not on disk yet when this returns.
        An envelope whose id this mailbox holds already is accepted and
        dropped (dedupe).

        Raises:
            MailboxClosed: the mailbox (or its factory) was closed.
            MailboxCorrupted: the database was found corrupt; nothing more is written.
            InvalidMessage: the body cannot be msgpack-encoded.
            MessageTooLarge: the encoded body is over the size limit.
        """
        if self._closed:
            raise self._failure or MailboxClosed(self.name)
        self._replies.keep(envelope)
        if envelope.id in self._held:
            return True
        if self._putters or self._slot.count >= self.capacity:
            return False
        self._writer.enqueue(self, envelope, self._encode(envelope), None)
        return True

    def put_nowait(self, envelope: Envelope) -> None:
        """Like :meth:`offer`, raising instead of returning ``False``.

        Raises:
            MailboxFull: the actor has ``capacity`` unacked messages, or senders wait.
            MailboxClosed, MailboxCorrupted, InvalidMessage, MessageTooLarge: as for
                :meth:`offer`.
        """
        if not self.offer(envelope):
            raise MailboxFull(self.name, self.capacity)

    async def put(self, envelope: Envelope) -> None:
        """Enqueue and wait until the message is committed to disk.

        While the actor has ``capacity`` unacked messages, waits for room in
        the order senders arrived. Cancelled while waiting for room, nothing
        was enqueued; cancelled while waiting for the commit, the message is
        withdrawn if its batch had not started, and committed without the
        caller otherwise. A re-sent envelope (same id) that this mailbox
        still holds returns at once, enqueuing nothing; one that the
        database holds, or a keyed tell acked within the ``dedupe_window``,
        is dropped at the commit, and ``put`` returns as for a write.

        Raises:
            MailboxClosed: the mailbox was closed before or while waiting for room.
            MailboxUnavailable: the commit failed (the message is not on disk), or
                the database was closed before it was written. A process killed
                while waiting does not know: re-send with the same idempotency key.
            MailboxCorrupted: the database was found corrupt, before or while waiting.
            InvalidMessage: the body cannot be msgpack-encoded, or its envelope
                holds a value sqlite cannot store (text with lone surrogates, an
                integer past 64 bits).
            MessageTooLarge: as for :meth:`offer`.
        """
        if self._closed:
            raise self._failure or MailboxClosed(self.name)
        self._replies.keep(envelope)
        if envelope.id in self._held:
            return
        data = self._encode(envelope)
        if self._putters or self._slot.count >= self.capacity:
            await self._wait_for_room()
        done: asyncio.Future[None] = self._loop.create_future()
        chunk = self._writer.enqueue(self, envelope, data, done)
        try:
            await done
        except asyncio.CancelledError:
            if not chunk.taken:
                self._writer.withdraw(chunk, envelope)
            raise

    async def _wait_for_room(self) -> None:
        await self._putters.wait()
        if self._closed:
            raise self._failure or MailboxClosed(self.name)

    # -- taking -----------------------------------------------------------

    def get_nowait(self) -> Envelope | None:
        """The next leased message, or ``None`` when the buffer is empty. Never blocks."""
        buffer = self._buffer
        if not buffer:
            return None
        envelope = buffer.popleft()
        self._replies.restore(envelope)
        self._out[envelope.id] = envelope
        self._get_total += 1
        if self._slot.loose and not self._fetching and len(buffer) < self._writer.batch:
            self._want_rows()
        return envelope

    def ack(self, envelope: Envelope) -> None:
        """The consumer is done with ``envelope``: delete it in the next commit.

        Frees its slot at once (a waiting sender is let in). Acking an
        envelope this mailbox did not hand out does nothing. The id of a
        tell sent with an idempotency key is kept (table
        ``greenroom_mailbox_acked``) for the factory's ``dedupe_window``, so
        a re-send of it is dropped.
        """
        if self._out.pop(envelope.id, None) is None:
            return
        self._held.discard(envelope.id)
        self._slot.count -= 1
        writer = self._writer
        writer.acks.append((envelope.id,))
        if envelope.causation_id == envelope.id:  # a keyed tell: remember_after_ack
            writer.remembered.append((envelope.id, self.name, time.time()))
        writer.wake()
        if self._putters:
            self._putters.wake()

    def requeue(self, envelope: Envelope) -> None:
        """Put a handed-out message back at the head (a retry); its ``attempt`` is saved."""
        if self._out.pop(envelope.id, None) is None:
            return
        writer = self._writer
        writer.attempts.append((envelope.attempt, envelope.id))
        writer.wake()
        if self._closed:
            self._held.discard(envelope.id)
            writer.releases.append((0, envelope.id))
            return
        buffer = self._buffer
        buffer.appendleft(envelope)
        if len(buffer) == 1 and self._listener is not None:
            self._listener()

    def close(self) -> list[Envelope]:
        """Refuse further puts, fail waiting senders, release the leases; returns ``[]``.

        The messages stay on disk: they belong to the actor's next
        incarnation (in this process or the next). Those handed out and not
        acked count one more ``attempt``. Puts already queued still commit.
        """
        if self._closed:
            return []
        self._closed = True
        error = MailboxClosed(self.name)
        self._putters.fail(error)
        releases = [(1, envelope.id) for envelope in self._out.values()]
        releases += [(0, envelope.id) for envelope in self._buffer]
        self._out.clear()
        self._buffer.clear()
        self._held.clear()
        slot = self._slot
        if slot.mailbox is self:
            slot.mailbox = None
        slot.make_loose()
        writer = self._writer
        writer.releases.extend(releases)
        writer.wake()
        return []

    def statistics(self) -> MailboxStatistics:
        """A snapshot: ``depth`` is the buffered messages, ``capacity`` the bound on disk."""
        return MailboxStatistics(
            depth=len(self._buffer),
            capacity=self.capacity,
            waiting_senders=len(self._putters),
            put_total=self._put_total,
            get_total=self._get_total,
            high_water=self._high_water,
        )

    # -- called by the writer ---------------------------------------------

    def _want_rows(self) -> None:
        self._fetching = True
        self._writer.want(self)

    @property
    def _mirror(self) -> bool:
        """Whether a message put now is leased on insert and buffered after its commit."""
        return not self._closed and not self._slot.loose

    def _arrive(self, envelope: Envelope) -> None:
        buffer = self._buffer
        buffer.append(envelope)
        self._put_total += 1
        depth = len(buffer)
        if depth > self._high_water:
            self._high_water = depth
        if depth == 1 and self._listener is not None:
            self._notify()

    def _notify(self) -> None:
        # Called by the writer after a commit: a listener that raises must
        # not take the writer (and every other mailbox) down with it.
        listener = self._listener
        if listener is None:
            return
        try:
            listener()
        except Exception as exc:
            logger.bind(actor=self.name, event="listener_failed").opt(exception=exc).error(
                "{actor}: the mailbox listener raised {error!r}; messages stay buffered",
                actor=self.name,
                error=exc,
            )

    def _fail(self, error: MailboxUnavailable) -> None:
        """The database is unusable (corrupt): refuse puts with ``error``, fail waiting senders.

        Buffered messages are dropped from memory, not handed out: they stay
        on disk, unacked, as if the process had died.
        """
        if self._failure is not None:
            return
        self._failure = error
        self._closed = True
        self._putters.fail(error)
        self._buffer.clear()
        self._out.clear()
        self._held.clear()
        if self._slot.mailbox is self:
            self._slot.mailbox = None

    def _fetched(self, envelopes: list[Envelope], more: bool) -> None:
        self._fetching = False
        buffer = self._buffer
        was_empty = not buffer
        held = self._held
        for envelope in envelopes:
            held.add(envelope.id)
        buffer.extend(envelopes)
        self._put_total += len(envelopes)
        self._high_water = max(self._high_water, len(buffer))
        if more and len(buffer) < self._writer.batch:
            self._want_rows()
        if was_empty and buffer and self._listener is not None:
            self._notify()

    def _dropped(self, envelope: Envelope) -> None:
        """A queued envelope was a duplicate of a row on disk, or was withdrawn."""
        self._held.discard(envelope.id)
        self._slot.count -= 1
        if self._putters:
            self._putters.wake()

    def _shed(self, count: int) -> None:
        """``count`` rows of this actor left the database (poison, dead-lettered)."""
        self._slot.count -= count
        if self._putters:
            self._putters.wake()

    def _hold(self, envelope_id: int) -> None:
        self._held.add(envelope_id)
