"""Actor references: the only way to reach an actor."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar, overload

from greenroom._errors import AskTimeout, GreenroomError

if TYPE_CHECKING:
    from greenroom.actors._cell import Cell
    from greenroom.actors._runtime import Runtime
    from greenroom.mailbox import IdempotencyKey, Message, Request

__all__ = ["ActorRef"]

R = TypeVar("R")


def _expire(future: asyncio.Future[Any], actor: str, body: object, timeout: float) -> None:
    if not future.done():
        future.set_exception(AskTimeout(actor, type(body).__qualname__, timeout))


class ActorRef:
    """The address of an actor, by name.

    A ref stays valid across restarts of its actor (the mailbox is kept),
    and finds a new incarnation registered under the same name after its
    supervisor was restarted. Refs compare and hash by name.
    """

    __slots__ = ("_cell", "_runtime", "name")

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self._runtime: Runtime = cell.runtime
        self.name = cell.name

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def _target(self, body: object) -> Cell:
        cell = self._cell
        if cell.mailbox.closed:
            fresh = self._runtime._cells.get(self.name)
            if fresh is not None:
                self._cell = cell = fresh
        return cell

    async def tell(self, body: Message, *, idempotency_key: IdempotencyKey | None = None) -> None:
        """Send ``body`` without waiting for it to be handled.

        Returns without suspending while the mailbox has room. When it is
        full, waits for room (``overflow="wait"``) or fails fast
        (``overflow="fail"``). Every refusal below is also a dead letter.
        A failure of the handler later is retried per the actor's policy,
        logged and dead-lettered; it is not raised here.

        ``idempotency_key`` (a ``str`` or ``bytes`` naming the request, the
        same on every re-send) makes a re-send after an ambiguous failure
        safe: the envelope id is derived from this actor's name and the key
        (:func:`~greenroom.mailbox.keyed_id`), so a durable or Redis mailbox
        drops the re-send while the first is unacked and for its dedupe
        window after the ack (``SqliteMailboxes(dedupe_window=)``,
        ``RedisMailboxes(dedupe_ttl=)``), and its causation is the same, so
        the handler's ledger steps are answered from their receipts past
        that window too. A memory mailbox does not dedupe (it does not
        outlive the process that could re-send). Through a pool, a re-send
        is the same envelope only if it reaches the same member (route by
        key). A key names one request to one actor: use it for a tell or for
        an ask, not both. See :class:`~greenroom.Envelope`.

        Raises:
            InvalidMessage: ``body`` is not a frozen, tagged Struct.
            MessageTooLarge: ``body`` encodes to more than the size limit.
            MailboxFull: the mailbox is full and its overflow is ``"fail"``.
            ActorStopped: the actor is stopped.
            MailboxUnavailable: a durable or Redis mailbox could not confirm
                the write: the outcome is unknown (it may have been written);
                re-send with the same ``idempotency_key``.
            UsageError: ``idempotency_key`` is not a non-empty str or bytes.
        """
        runtime = self._runtime
        cell = self._target(body)
        envelope = runtime._envelope(cell, body, key=idempotency_key)
        if not cell.durable:
            try:
                if cell.mailbox.offer(envelope):  # the fast path: room, nobody waiting
                    return
            except GreenroomError:
                pass  # closed: _put says so, with a dead letter
        await runtime._put(cell, envelope, None)

    def tell_nowait(self, body: Message, *, idempotency_key: IdempotencyKey | None = None) -> None:
        """Send ``body`` without ever waiting (``idempotency_key``: as for :meth:`tell`).

        Raises:
            InvalidMessage: ``body`` is not a frozen, tagged Struct.
            MessageTooLarge: ``body`` encodes to more than the size limit.
            MailboxFull: the mailbox is full, whatever its overflow setting.
            ActorStopped: the actor is stopped.
            UsageError: ``idempotency_key`` is not a non-empty str or bytes.
        """
        runtime = self._runtime
        cell = self._target(body)
        runtime._put_nowait(cell, runtime._envelope(cell, body, key=idempotency_key))

    @overload
    async def ask(
        self,
        body: Request[R],
        *,
        timeout: float | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> R: ...
    @overload
    async def ask(
        self,
        body: Message,
        *,
        timeout: float | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object: ...
    async def ask(
        self,
        body: Message,
        *,
        timeout: float | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object:
        """Send ``body`` and wait for the handler's return value.

        To a type checker the result is ``R`` for a :class:`~greenroom.Request`
        ``[R]`` body, and ``object`` for any other message: its reply type is
        not declared, so the caller narrows it (``isinstance``) before use.

        ``timeout`` (seconds) bounds the whole call, waiting for mailbox room
        included; ``None`` means the runtime's ``ask_timeout`` (default 5 s).
        Outer cancellation and deadlines still apply. A reply that arrives
        after the timeout is dropped and counted in the runtime's statistics.

        ``idempotency_key``: as for :meth:`tell`, except after the first
        ask was handled. While it is unacked, a re-ask is dropped by the
        mailbox and waits for the first one's reply (an ask of a key already
        being asked in this runtime joins it); once it was handled, the
        re-ask is delivered again and its handler runs again, with its
        ledger steps answered from their receipts, so the asker gets an
        answer and no step with an effect runs twice.

        Raises:
            AskTimeout: no reply within ``timeout``.
            HandlerError: the handler failed on every attempt its retry policy
                allowed; carries the original error's type and message.
            UnknownMessage: the actor has no handler for ``type(body)``.
            ActorStopped: the actor is stopped, or stopped with this ask pending.
            MailboxFull: the mailbox is full and its overflow is ``"fail"``.
            MailboxUnavailable: as for :meth:`tell` (the outcome is unknown).
            InvalidMessage, MessageTooLarge, UsageError: as for :meth:`tell`.
        """
        runtime = self._runtime
        if timeout is None:
            timeout = runtime.config.ask_timeout
        cell = self._target(body)
        envelope = runtime._envelope(cell, body, ask=True, timeout=timeout, key=idempotency_key)
        asks = runtime._asks
        if idempotency_key is not None:
            joined = asks.get(envelope.id)
            if joined is not None and not joined.done():
                return await _join(joined, cell.name, body, timeout)
        loop = runtime._loop
        future: asyncio.Future[Any] = loop.create_future()
        asks[envelope.id] = future
        handle = loop.call_later(timeout, _expire, future, cell.name, body, timeout)
        try:
            await runtime._put(cell, envelope, timeout)
            return await future
        finally:
            handle.cancel()
            if idempotency_key is None:
                asks.pop(envelope.id, None)
            elif asks.get(envelope.id) is future:  # not a later ask of the same key
                del asks[envelope.id]


async def _join(future: asyncio.Future[Any], actor: str, body: object, timeout: float) -> Any:
    """Wait for the reply of an ask of the same key made earlier in this runtime."""
    try:
        return await asyncio.wait_for(asyncio.shield(future), timeout)
    except TimeoutError:
        raise AskTimeout(actor, type(body).__qualname__, timeout) from None
