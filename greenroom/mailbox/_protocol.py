"""The Mailbox protocol every mailbox implements: memory, sqlite, redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from greenroom.mailbox._envelope import Envelope

__all__ = ["Mailbox", "MailboxStatistics"]


class MailboxStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """A snapshot of one mailbox.

    Attributes:
        depth: messages waiting to be handled.
        capacity: the bound on ``depth``.
        waiting_senders: senders suspended until there is room.
        put_total: messages accepted since the mailbox was made.
        get_total: messages handed to the consumer since it was made.
        high_water: the largest ``depth`` seen.
    """

    depth: int
    capacity: int
    waiting_senders: int
    put_total: int
    get_total: int
    high_water: int


class Mailbox(Protocol):
    """A bounded queue of envelopes for one consumer.

    Guarantees every implementation keeps: messages from one sender are
    handed out in the order they were put (FIFO per sender); a message stays
    owned by the mailbox until :meth:`ack`; ``depth`` never exceeds
    ``capacity`` except by :meth:`requeue` of a message already counted.
    """

    @property
    def capacity(self) -> int:
        """The bound on the number of waiting messages."""
        ...

    def __len__(self) -> int:
        """The depth: messages waiting to be handled."""
        ...

    def offer(self, envelope: Envelope) -> bool:
        """Enqueue if there is room and no sender is waiting; ``False`` otherwise.

        Raises:
            MailboxClosed: the mailbox was closed.
        """
        ...

    def put_nowait(self, envelope: Envelope) -> None:
        """Enqueue without waiting.

        Raises:
            MailboxFull: the mailbox is at capacity (or senders are waiting).
            MailboxClosed: the mailbox was closed.
        """
        ...

    async def put(self, envelope: Envelope) -> None:
        """Enqueue, waiting for room in arrival order when full.

        Returns without suspending when there is room. If cancelled while
        waiting, the message was not enqueued.

        Raises:
            MailboxClosed: the mailbox was closed before or while waiting.
        """
        ...

    def requeue(self, envelope: Envelope) -> None:
        """Put a message that was handed out back at the head (for a retry)."""
        ...

    def get_nowait(self) -> Envelope | None:
        """The next message, or ``None`` when empty. Never blocks."""
        ...

    def ack(self, envelope: Envelope) -> None:
        """The consumer is done with ``envelope``: it may be forgotten."""
        ...

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` whenever a message arrives in an empty mailbox."""
        ...

    def close(self) -> list[Envelope]:
        """Refuse further puts, fail waiting senders, and return what was left."""
        ...

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        ...

    def statistics(self) -> MailboxStatistics:
        """A snapshot of depth, bound and counters."""
        ...
