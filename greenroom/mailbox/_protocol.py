"""The Mailbox protocol every mailbox implements: memory, sqlite, redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec

from greenroom.mailbox._config import MailboxConfig
from greenroom.mailbox._envelope import Envelope

__all__ = ["Mailbox", "MailboxFactory", "MailboxStatistics"]


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

    @property
    def durable(self) -> bool:
        """Whether a message is on disk once :meth:`put` returns.

        For a durable mailbox, :meth:`offer` and :meth:`put_nowait` are the
        fire-and-forget mode: the message is queued for the next group
        commit, not yet committed, when they return. ``ActorRef.tell`` on a
        durable mailbox always waits for the commit; ``tell_nowait`` does not.
        """
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


class MailboxFactory(Protocol):
    """Makes the mailboxes of one kind: ``Runtime(mailboxes={"durable": factory})``."""

    def create(self, name: str, config: MailboxConfig, message_types: tuple[type, ...]) -> Mailbox:
        """A mailbox for the actor called ``name``.

        ``message_types`` are the types its handlers take: a mailbox that
        stores encoded messages decodes bodies into their union, and sends a
        body that fits none of them to the dead letters.
        """
        ...
