"""RedisMailboxes: the factory of durable mailboxes on Redis Streams."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
import anyio.abc

from greenroom._errors import MailboxClosed, UsageError
from greenroom.mailbox._config import MailboxConfig
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import MailboxUnavailable, UndecodableMessage
from greenroom.mailbox._redis_client import connect, redis_error
from greenroom.mailbox._redis_deadletters import RedisDeadLetterSink
from greenroom.mailbox._redis_mailbox import RedisMailbox
from greenroom.mailbox._redis_mailboxes import Pump
from greenroom.mailbox._redis_outbox import Outbox, claim_pending
from greenroom.mailbox._sqlite_rows import BodyDecoder, Poison

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisMailboxes"]


class RedisMailboxes:
    """Durable mailboxes on Redis Streams, one stream per actor.

    Use as ``async with RedisMailboxes(url) as boxes:`` around the runtime,
    and pass it as ``Runtime(mailboxes={"durable": boxes},
    dead_letters=boxes.dead_letters)``. Keys:
    ``<prefix>{<actor>}:s`` (the stream, consumer group ``greenroom``),
    ``<prefix>{<actor>}:a`` (attempts of retried entries),
    ``<prefix>{<actor>}:d:<id>`` (dedupe markers of unacked envelopes,
    deleted on ack, expiring after ``dedupe_ttl`` at the latest; the marker
    of a tell sent with an idempotency key is kept ``dedupe_ttl`` after its
    ack instead), and
    ``<prefix>dead`` (the dead-letter stream: entries that cannot be decoded
    or repeat a held envelope's id with another body,
    and, with :attr:`dead_letters` as the runtime's sink, every dead letter
    the runtime makes, such as a message that failed past its retry policy;
    each with its error, read by :class:`RedisDeadLetters` and ``greenroom
    dlq --redis URL --prefix P``). Without that sink the runtime keeps its
    dead letters in memory, and only the undecodable entries reach the stream.

    Args:
        client_or_url: a ``redis://`` URL, or a ``redis.asyncio.Redis``
            answering bytes (not closed on exit).
        prefix: the prefix of every key.
        lease: seconds an entry handed to a consumer that stopped renewing
            it stays its own; then another process claims it.
        batch: the most entries read per stream per round trip.
        consumer: this process's consumer name in the groups (unique by
            default; a process restarted with the same name gets its pending
            entries back at once instead of after ``lease``).
        dedupe_ttl: the most seconds an unacked envelope id is remembered
            against re-sends (default 3600.0), and how long the id of a
            tell sent with an idempotency key is remembered after its ack.
            The dedupe window of a keyed tell is thus from its put until
            ``dedupe_ttl`` after its ack (if it was acked within
            ``dedupe_ttl`` of its put); a re-send later is delivered again,
            and the side-effect ledger, keyed by the same causation, still
            answers its steps. A keyed ask is deduped while unacked only.
        poll: seconds between reads for entries other processes put.
        max_bytes: the largest encoded body accepted, or ``None``.
    """

    def __init__(
        self,
        client_or_url: redis.asyncio.Redis | str,
        *,
        prefix: str = "greenroom:",
        lease: float = 30.0,
        batch: int = 256,
        consumer: str | None = None,
        dedupe_ttl: float = 3600.0,
        poll: float = 0.05,
        max_bytes: int | None = None,
    ) -> None:
        if lease <= 0 or batch < 1 or poll <= 0 or dedupe_ttl <= 0:
            raise UsageError("RedisMailboxes: lease, poll and dedupe_ttl must be > 0, batch >= 1")
        self._client, self._owned = connect(client_or_url)
        self.prefix = prefix
        self._max_bytes = max_bytes
        self._pump = Pump(
            self._client,
            prefix,
            consumer or f"c-{uuid.uuid4().hex}",
            batch=batch,
            lease=lease,
            dedupe_ttl=dedupe_ttl,
            poll=poll,
        )
        self._dead_letters = RedisDeadLetterSink(self._pump)
        self._decoders: dict[tuple[type, ...], BodyDecoder] = {}
        self._outboxes: dict[tuple[str, int], Outbox] = {}
        self._state = "new"
        self._task_group: anyio.abc.TaskGroup | None = None

    def __repr__(self) -> str:
        return f"<RedisMailboxes {self.prefix!r} {self._state}>"

    def on_rejected(self, hook: Callable[[Envelope, BaseException], None] | None) -> None:
        """Call ``hook(envelope, error)`` for an ask whose entry cannot be delivered.

        Such an entry (an unknown message type, a body that does not decode)
        goes to the dead-letter stream; the hook lets whoever routes replies
        fail the waiting caller at once with ``error``
        (:class:`UnknownMessage` or :class:`UndecodableMessage`).
        """
        if hook is None:
            self._pump.rejected = None
            return

        def rejected(envelope: Envelope, poison: Poison | None) -> None:
            error: BaseException
            if poison is not None and poison.cause is not None:
                error = poison.cause
            else:
                detail = poison.error.message if poison is not None else "it cannot be decoded"
                error = UndecodableMessage(envelope.recipient, detail)
            hook(envelope, error)

        self._pump.rejected = rejected

    @property
    def client(self) -> redis.asyncio.Redis:
        """The Redis client (for other Redis-backed parts of the same process)."""
        return self._client

    @property
    def dead_letters(self) -> RedisDeadLetterSink:
        """The sink that writes the runtime's dead letters to the dead-letter stream.

        Pass it as ``Runtime(dead_letters=boxes.dead_letters)``. Letters are
        written by the mailboxes' pump, batched with its other writes and
        kept through Redis outages; one added after the mailboxes are closed
        is dropped (logged). See :class:`RedisDeadLetterSink`.
        """
        return self._dead_letters

    @property
    def duplicates(self) -> int:
        """Entries acked unhandled as copies of an envelope a mailbox here held.

        An entry that repeats the id and the body of an envelope its mailbox
        holds (buffered or handed out) is a duplicate: a re-send after the
        dedupe marker expired, or a copy written by other code. It is acked
        at once, leaving the held one's dedupe marker and saved attempts as
        they are. One that repeats the id with another body is not counted
        here: it is a dead letter (:class:`EnvelopeIdConflict`). Ids of
        envelopes already acked are not remembered: a later entry with one
        is a new message.
        """
        return self._pump.duplicates

    @property
    def dead_key(self) -> str:
        """The dead-letter stream's key."""
        return self._pump.dead_key

    async def __aenter__(self) -> Self:
        """Check Redis answers and start the pump.

        Raises:
            MailboxUnavailable: Redis cannot be reached.
        """
        if self._state != "new":
            raise UsageError(f"{self!r} was opened already; make a new RedisMailboxes")
        self._state = "open"
        try:
            await self._client.ping()
        except redis_error() as error:
            self._state = "closed"
            self._pump.stopped = True
            await self._close_client()
            raise MailboxUnavailable(
                f"redis (prefix {self.prefix})", "connect", str(error) or repr(error)
            ) from error
        except BaseException:
            self._state = "closed"
            self._pump.stopped = True
            await self._close_client()
            raise
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._pump.run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return None
        self._state = "closed"
        for box in list(self._pump.boxes.values()):
            box.close()
        self._pump.closing = True
        self._pump.wake()
        try:
            await task_group.__aexit__(None, None, None)
        finally:
            await self._close_client()
        return None

    async def aclose(self) -> None:
        """Write what is queued, stop the pump, close an owned client. Idempotent."""
        await self.__aexit__(None, None, None)

    async def _close_client(self) -> None:
        if self._owned:
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self._client.aclose()

    async def flush(self) -> None:
        """Wait until what was queued before this call is written, and what is new is read.

        Raises:
            MailboxClosed: the factory is not open.
            MailboxUnavailable: Redis failed meanwhile.
        """
        if self._state != "open":
            raise MailboxClosed(repr(self))
        await self._pump.flush()

    def create(
        self, name: str, config: MailboxConfig, message_types: tuple[type, ...]
    ) -> RedisMailbox:
        """The durable mailbox of the actor called ``name``, bounded by ``config.capacity``.

        Entries left in its stream (by an earlier incarnation) are read
        asynchronously, oldest first, and the listener is called when ready.

        Raises:
            MailboxClosed: the factory is not open.
        """
        if self._state != "open":
            raise MailboxClosed(name)
        decoder = self._decoders.get(message_types)
        if decoder is None:
            decoder = self._decoders[message_types] = BodyDecoder(message_types, self._max_bytes)
        return RedisMailbox(name, config.capacity, self._pump, decoder, self._max_bytes)

    async def post(self, envelope: Envelope, *, capacity: int = 1024) -> None:
        """Append ``envelope`` to its recipient's stream without consuming that stream.

        The send-only path: whichever process hosts ``envelope.recipient``
        (this one or another) reads it. Returns once Redis has the entry;
        an envelope id already unacked in the stream is not added twice,
        nor a keyed tell's acked within ``dedupe_ttl``.
        ``capacity`` is the stream's bound, checked on the server.

        :class:`MailboxUnavailable` means *outcome unknown*: the entry may
        have been added before the connection failed. Posting the same
        envelope again is safe (deduped by its id while unacked, within
        ``dedupe_ttl``); a new envelope for the same message is not.

        Raises:
            MailboxClosed: the factory is not open.
            MailboxFull: the stream holds ``capacity`` entries.
            MailboxUnavailable: the outcome is unknown (the entry may have
                been added, as for ``RedisMailbox.put``): re-send the same
                envelope, or one with the same idempotency key.
            InvalidMessage, MessageTooLarge: the body cannot be encoded or is too large.
        """
        if self._state != "open":
            raise MailboxClosed(envelope.recipient)
        if capacity < 1:
            raise UsageError(f"post: capacity must be >= 1, not {capacity}")
        outbox = self._outboxes.get((envelope.recipient, capacity))
        if outbox is None:
            outbox = Outbox(envelope.recipient, capacity, self._pump, self._max_bytes)
            self._outboxes[(envelope.recipient, capacity)] = outbox
        await outbox.post(envelope)

    async def claim(self, name: str) -> int:
        """Make every pending entry of ``name``'s stream this process's own; returns how many.

        For taking over an actor whose previous host stopped or died: call
        it before :meth:`create`, and the new mailbox delivers the claimed
        entries first, in stream order, then new ones. Entries another live
        consumer still works on are taken from it too, so call it only when
        the caller knows it is the actor's one host (a partition lease).

        Raises:
            MailboxClosed: the factory is not open.
            MailboxUnavailable: Redis failed.
        """
        if self._state != "open":
            raise MailboxClosed(name)
        try:
            return await claim_pending(self._pump, name)
        except redis_error() as error:
            raise MailboxUnavailable(
                f"redis (prefix {self.prefix})", "claim", str(error) or repr(error)
            ) from error
