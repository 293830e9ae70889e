"""RedisMailbox: one actor's mailbox on a Redis stream, fed by the pump of its factory.

Where a message is, at any moment: queued for the next pipelined write
(``put`` waits here), in the actor's stream ``<prefix>{<actor>}:s``, read
through the consumer group into the local buffer (``get_nowait`` takes from
here, without I/O; the entry is in the group's pending list, leased to this
process), handed out to the consumer, then gone once the consumer acks and
the XACK + XDEL is sent. See :mod:`greenroom.mailbox._redis_mailboxes`.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from greenroom._errors import MailboxClosed, MailboxFull, MessageTooLarge
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._protocol import MailboxStatistics
from greenroom.mailbox._replies import LocalReplies
from greenroom.mailbox._senders import WaitingSenders
from greenroom.mailbox._sqlite_rows import BodyDecoder, encode_body

if TYPE_CHECKING:
    from greenroom.mailbox._redis_mailboxes import Pump, PutOp

__all__ = ["RedisMailbox"]


class RedisMailbox:
    """One actor's mailbox in a :class:`RedisMailboxes`. Made by its ``create``.

    Guarantees: at-least-once (an entry leaves the stream only when acked;
    one handed out and never acked is delivered again, to the next
    incarnation in this process, or to another process once its lease has
    expired, with ``attempt`` incremented); FIFO per sender; an envelope whose
    id is unacked in the stream (within ``dedupe_ttl``) is not added twice,
    nor a tell sent with an idempotency key (``Envelope.remember_after_ack``)
    acked less than ``dedupe_ttl`` ago; an entry that repeats the id of one
    held here (written by other code, or after the marker expired) is acked
    unhandled when its body is the same, dead-lettered as
    :class:`EnvelopeIdConflict` when it is not; an entry that cannot be
    decoded is dead-lettered, never retried; at most ``capacity`` entries in
    the stream (checked on the server as well).

    ``put`` returns once Redis has the entry. ``offer`` and ``put_nowait``
    are the fire-and-forget mode: they return as soon as the entry is queued
    for the next pipelined write.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_count",
        "_get_total",
        "_high_water",
        "_listener",
        "_loop",
        "_out",
        "_put_total",
        "_putters",
        "_replies",
        "capacity",
        "decoder",
        "held",
        "keys",
        "max_bytes",
        "name",
        "pump",
        "sids",
        "started",
        "wanted",
    )

    def __init__(
        self,
        name: str,
        capacity: int,
        pump: Pump,
        decoder: BodyDecoder,
        max_bytes: int | None,
    ) -> None:
        self.name = name
        self.capacity = capacity
        self.pump = pump
        self.decoder = decoder
        self.max_bytes = max_bytes
        self.keys = pump.keys_of(name)
        self._loop = asyncio.get_running_loop()
        self._buffer: deque[Envelope] = deque()
        self._replies = LocalReplies()  # reply futures of local asks, by envelope id
        self._out: dict[int, Envelope] = {}  # handed out, not yet acked
        self.held: set[int] = set()  # ids queued, buffered or handed out
        self.sids: dict[int, bytes] = {}  # envelope id -> stream entry id
        self._putters = WaitingSenders(lambda: self._count < self.capacity)
        self._listener: Callable[[], None] | None = None
        self._closed = False
        self._count = 0
        self._put_total = 0
        self._get_total = 0
        self._high_water = 0
        self.started = False  # the group exists and this consumer's old entries are read
        self.wanted = True  # the pump should read the stream
        pump.attach(self)

    def __repr__(self) -> str:
        return f"<RedisMailbox {self.name} {self._count}/{self.capacity}>"

    @property
    def durable(self) -> bool:
        """Always ``True``: a message is in Redis once :meth:`put` returns."""
        return True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or its factory closed)."""
        return self._closed

    def __len__(self) -> int:
        """Unacked messages known to this mailbox: queued, buffered or handed out."""
        return self._count

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` whenever a message arrives in an empty buffer."""
        self._listener = listener

    # -- putting ----------------------------------------------------------

    def _encode(self, envelope: Envelope) -> bytes:
        data = encode_body(envelope.body)
        limit = self.max_bytes
        if limit is not None and len(data) > limit:
            raise MessageTooLarge(type(envelope.body).__qualname__, len(data), limit)
        return data

    def _enqueue(self, envelope: Envelope, data: bytes, done: asyncio.Future[None] | None) -> PutOp:
        self.held.add(envelope.id)
        self._count += 1
        return self.pump.put(self, envelope, data, done)

    def offer(self, envelope: Envelope) -> bool:
        """Queue for the next write if there is room and no sender waits; else ``False``.

        Never fails for Redis: while it is unreachable the entry stays queued
        and is written when it answers (deduped by envelope id if a write
        whose reply was lost is retried); it is lost if the mailboxes close,
        or the process ends, before that.

        Raises:
            MailboxClosed: the mailbox (or its factory) was closed.
            InvalidMessage, MessageTooLarge: the body cannot be encoded or is too large.
        """
        if self._closed:
            raise MailboxClosed(self.name)
        self._replies.keep(envelope)
        if envelope.id in self.held:
            return True
        if self._putters or self._count >= self.capacity:
            return False
        self._enqueue(envelope, self._encode(envelope), None)
        return True

    def put_nowait(self, envelope: Envelope) -> None:
        """Like :meth:`offer`, raising :class:`MailboxFull` instead of returning ``False``."""
        if not self.offer(envelope):
            raise MailboxFull(self.name, self.capacity)

    async def put(self, envelope: Envelope) -> None:
        """Enqueue and wait until Redis has the entry.

        Waits for room in arrival order while ``capacity`` messages are
        unacked. Cancelled while waiting for room, nothing was enqueued.

        :class:`MailboxUnavailable` means *outcome unknown*: the connection
        may have failed after Redis added the entry (most such puts were in
        fact written), or before it was sent. To settle it, put the *same*
        envelope again: its id is deduped while its entry is unacked (at most
        ``dedupe_ttl``), so it is stored once either way. A new envelope for
        the same message is not deduped, and neither is a re-put after the
        first was handled and acked.

        Raises:
            MailboxClosed: the mailbox was closed before or while waiting for room.
            MailboxFull: the stream on the server is at capacity (other producers).
            MailboxUnavailable: the outcome is unknown: the connection failed
                while the write was sent or its answer awaited, so the entry
                may well have been added. Re-send with the same idempotency
                key (``tell(..., idempotency_key=)``): the re-send is dropped
                if the first was written. (During an outage an awaited put
                fails before it is sent; that one was not written.)
        """
        if self._closed:
            raise MailboxClosed(self.name)
        self._replies.keep(envelope)
        if envelope.id in self.held:
            return
        data = self._encode(envelope)
        if self._putters or self._count >= self.capacity:
            await self._wait_for_room()
        done: asyncio.Future[None] = self._loop.create_future()
        op = self._enqueue(envelope, data, done)
        try:
            await done
        except asyncio.CancelledError:
            self.pump.withdraw(op)
            raise

    async def _wait_for_room(self) -> None:
        await self._putters.wait()
        if self._closed:
            raise MailboxClosed(self.name)

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
        if not buffer and self.wanted:
            self.pump.wake()  # a read stopped at a full buffer: read on
        return envelope

    def ack(self, envelope: Envelope) -> None:
        """The consumer is done with ``envelope``: XACK + XDEL it in the next write."""
        if self._out.pop(envelope.id, None) is None:
            return
        self.held.discard(envelope.id)
        sid = self.sids.pop(envelope.id, None)
        if sid is not None:
            self.pump.ack(self, envelope.id, sid, envelope.causation_id == envelope.id)
        self.forget(1)

    def requeue(self, envelope: Envelope) -> None:
        """Put a handed-out message back at the head (a retry); its ``attempt`` is saved."""
        if self._out.pop(envelope.id, None) is None:
            return
        self.pump.attempt(self, envelope.id, envelope.attempt)
        if self._closed:
            return
        buffer = self._buffer
        buffer.appendleft(envelope)
        if len(buffer) == 1 and self._listener is not None:
            self._listener()

    def close(self) -> list[Envelope]:
        """Refuse further puts, fail waiting senders; returns ``[]``.

        The entries stay in the stream, pending for this process's consumer:
        the actor's next incarnation here reads them first, another process
        claims them once their lease expires. Those handed out and not acked
        count one more ``attempt``. Puts already queued are still written.
        """
        if self._closed:
            return []
        self._closed = True
        error = MailboxClosed(self.name)
        self._putters.fail(error)
        for envelope in self._out.values():
            self.pump.attempt(self, envelope.id, envelope.attempt + 1)
        self._out.clear()
        self._buffer.clear()
        self.held.clear()
        self.sids.clear()
        self.pump.detach(self)
        return []

    def statistics(self) -> MailboxStatistics:
        """A snapshot: ``depth`` is the buffered messages, ``capacity`` the bound."""
        return MailboxStatistics(
            depth=len(self._buffer),
            capacity=self.capacity,
            waiting_senders=len(self._putters),
            put_total=self._put_total,
            get_total=self._get_total,
            high_water=self._high_water,
        )

    # -- called by the pump -----------------------------------------------

    @property
    def room(self) -> int:
        """How many entries the buffer should take in the next read."""
        return 0 if self._closed else max(0, self.pump.batch - len(self._buffer))

    def forget(self, count: int) -> None:
        """``count`` messages left (acked, deduped, refused, dead-lettered)."""
        self._count -= count
        if self._putters:
            self._putters.wake()

    def arrive(self, envelopes: list[Envelope]) -> None:
        """Entries read from the stream, in stream order."""
        if self._closed or not envelopes:
            return
        buffer = self._buffer
        was_empty = not buffer
        buffer.extend(envelopes)
        self._put_total += len(envelopes)
        self._high_water = max(self._high_water, len(buffer))
        if was_empty and self._listener is not None:
            self._listener()

    def holding(self, envelope_id: int) -> Envelope | None:
        """The envelope with ``envelope_id`` handed out or buffered here, or ``None``."""
        envelope = self._out.get(envelope_id)
        if envelope is not None:
            return envelope
        for buffered in self._buffer:
            if buffered.id == envelope_id:
                return buffered
        return None

    def adopt(self, envelope_id: int) -> bool:
        """Whether an entry read is new to this mailbox (counted now), not one it put."""
        if envelope_id in self.held:
            return False
        self.held.add(envelope_id)
        self._count += 1
        return True
