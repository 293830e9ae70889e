"""The in-memory mailbox: the default and the fast path."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

from greenroom._errors import MailboxClosed, MailboxFull
from greenroom.mailbox._config import MailboxConfig
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._protocol import MailboxStatistics

__all__ = ["MemoryMailbox", "MemoryMailboxes"]


# The queue of every mailbox never sent anything: an empty deque takes
# 624 bytes, a third of an idle actor.
class _NeverWritten(deque[Envelope]):
    def append(self, envelope: Envelope) -> None:
        raise AssertionError("the shared empty queue is never written to")

    appendleft = append


_EMPTY: deque[Envelope] = _NeverWritten()


class MemoryMailbox:
    """A bounded deque of envelopes, with senders waiting in line when full.

    Bodies are passed by reference (they are frozen). ``put_nowait`` and a
    ``put`` that finds room never suspend; a full mailbox hands freed slots to
    waiting senders strictly in the order they began to wait (no barging). An
    idle mailbox holds no task and no future.
    """

    __slots__ = (
        "_capacity",
        "_closed",
        "_get_total",
        "_high_water",
        "_label",
        "_left",
        "_listener",
        "_putters",
        "_queue",
        "_requeued",
        "_reserved",
    )

    def __init__(self, capacity: int = 1024, *, label: str = "mailbox") -> None:
        self._capacity = capacity
        self._label = label
        self._queue: deque[Envelope] = _EMPTY  # a deque of its own on the first put
        self._putters: deque[asyncio.Future[None]] | None = None
        self._reserved = 0
        self._listener: Callable[[], None] | None = None
        self._closed = False
        self._get_total = 0
        self._requeued = 0  # put back at the head: handed out again, not put again
        self._left = 0  # still queued when the mailbox closed
        self._high_water = 0

    @property
    def capacity(self) -> int:
        """The bound on the number of waiting messages."""
        return self._capacity

    @property
    def durable(self) -> bool:
        """Always ``False``: what is in memory is lost with the process."""
        return False

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __len__(self) -> int:
        return len(self._queue)

    def set_listener(self, listener: Callable[[], None] | None) -> None:
        """Call ``listener`` whenever a message arrives in an empty mailbox."""
        self._listener = listener

    def _append(self, envelope: Envelope) -> None:
        queue = self._queue
        if queue is _EMPTY:
            queue = self._queue = deque()
        queue.append(envelope)
        depth = len(queue)
        if depth > self._high_water:
            self._high_water = depth
        if depth == 1 and self._listener is not None:
            self._listener()

    def offer(self, envelope: Envelope) -> bool:
        """Enqueue if there is room and no sender is waiting; ``False`` otherwise.

        Raises:
            MailboxClosed: the mailbox was closed.
        """
        if self._closed:
            raise MailboxClosed(self._label)
        queue = self._queue
        depth = len(queue)
        # No test of waiting senders: while one waits the mailbox is full, as
        # every slot a get frees is reserved for the sender first in line.
        if depth + self._reserved >= self._capacity:
            return False
        if queue is _EMPTY:
            queue = self._queue = deque()
        queue.append(envelope)
        if depth >= self._high_water:
            self._high_water = depth + 1
        if not depth and self._listener is not None:
            self._listener()
        return True

    def put_nowait(self, envelope: Envelope) -> None:
        """Enqueue without waiting.

        Raises:
            MailboxFull: at capacity, or other senders are already waiting for room.
            MailboxClosed: the mailbox was closed.
        """
        if not self.offer(envelope):
            raise MailboxFull(self._label, self._capacity)

    async def put(self, envelope: Envelope) -> None:
        """Enqueue, waiting for room in arrival order when full (no suspension if there is room).

        If cancelled while waiting, the message is not enqueued and the slot
        passes to the next waiting sender.

        Raises:
            MailboxClosed: the mailbox was closed before or while waiting.
        """
        if self._closed:
            raise MailboxClosed(self._label)
        if not self._putters and len(self._queue) + self._reserved < self._capacity:
            self._append(envelope)
            return
        if self._putters is None:
            self._putters = deque()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._putters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # We were given a slot but will not use it: pass it on.
                self._reserved -= 1
                self._wake_putter()
            else:
                with contextlib.suppress(ValueError):
                    self._putters.remove(waiter)
            raise
        self._reserved -= 1
        if self._closed:
            raise MailboxClosed(self._label)
        self._append(envelope)

    def _wake_putter(self) -> None:
        putters = self._putters
        while putters and len(self._queue) + self._reserved < self._capacity:
            waiter = putters.popleft()
            if not waiter.done():
                self._reserved += 1
                waiter.set_result(None)

    def requeue(self, envelope: Envelope) -> None:
        """Put a message that was handed out back at the head (for a retry).

        The bound is not checked: the message was counted when first put.
        """
        queue = self._queue
        if queue is _EMPTY:
            queue = self._queue = deque()
        queue.appendleft(envelope)
        self._requeued += 1
        if len(queue) == 1 and self._listener is not None:
            self._listener()

    def get_nowait(self) -> Envelope | None:
        """The next message, or ``None`` when empty. Never blocks."""
        queue = self._queue
        if not queue:
            return None
        envelope = queue.popleft()
        self._get_total += 1
        if self._putters:
            self._wake_putter()
        return envelope

    def ack(self, envelope: Envelope) -> None:
        """Forget ``envelope``: in memory there is nothing left to release."""

    def close(self) -> list[Envelope]:
        """Refuse further puts, fail waiting senders, and return what was left."""
        self._closed = True
        if self._putters:
            error = MailboxClosed(self._label)
            for waiter in self._putters:
                if not waiter.done():
                    waiter.set_exception(error)
            self._putters.clear()
        left = list(self._queue)
        self._left += len(left)
        self._queue.clear()
        return left

    def statistics(self) -> MailboxStatistics:
        """A snapshot of depth, bound and counters."""
        return MailboxStatistics(
            depth=len(self._queue),
            capacity=self._capacity,
            waiting_senders=len(self._putters or ()),
            # Every put and requeue is got, still queued, or was left at close.
            put_total=self._get_total + len(self._queue) + self._left - self._requeued,
            get_total=self._get_total,
            high_water=self._high_water,
        )


class MemoryMailboxes:
    """The factory of the built-in ``"memory"`` kind."""

    def create(
        self, name: str, config: MailboxConfig, message_types: tuple[type, ...]
    ) -> MemoryMailbox:
        """A :class:`MemoryMailbox` bounded by ``config.capacity``."""
        return MemoryMailbox(config.capacity, label=name)
