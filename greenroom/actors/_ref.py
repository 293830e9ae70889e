"""Actor references: the only way to reach an actor.

A send makes its envelope (``System.envelope``) and offers it to the mailbox,
which takes it at once when there is room (the fast path, never suspending);
else ``System.put`` waits or fails per the overflow setting. An ask's reply
future rides in the envelope; its deadline (``System.deadlines``) bounds the
wait for room and for the reply together.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING, Any, TypeVar, overload

from greenroom._errors import GreenroomError

if TYPE_CHECKING:
    from greenroom.actors._cell import Cell
    from greenroom.mailbox import IdempotencyKey, Message, Request

__all__ = ["ActorRef"]

R = TypeVar("R")


class ActorRef:
    """The address of an actor, by name.

    A ref stays valid across restarts of its actor (the mailbox is kept),
    and finds a new incarnation registered under the same name after its
    supervisor was restarted. Refs compare and hash by name.
    """

    __slots__ = ("_cell", "name")

    _routed = False  # a pool's ref picks a member for every body (PoolRef._target)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell
        self.name = cell.name

    def __repr__(self) -> str:
        return f"ActorRef({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorRef) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def _target(self, body: object) -> Cell:
        """The cell that takes ``body``: this actor's current one (a pool routes)."""
        cell = self._cell
        if cell.stopped:
            fresh = cell.system.cells.get(self.name)
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

        ``idempotency_key`` (``str`` or ``bytes``, the same on every re-send
        of one request to one actor; not shared by a tell and an ask) makes a
        re-send after an ambiguous failure safe: the envelope id is
        :func:`~greenroom.mailbox.keyed_id` of the actor's name and the key, so
        a durable or Redis mailbox drops the re-send while the first is
        unacked and for its dedupe window after (``SqliteMailboxes(dedupe_window=)``,
        ``RedisMailboxes(dedupe_ttl=)``); its causation being the same, the
        handler's ledger steps are answered from their receipts past that
        window too. A memory mailbox does not
        dedupe (it dies with the sender). Through a pool, route by key so a
        re-send reaches the same member. See :class:`~greenroom.Envelope`.

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
        cell = self._cell
        if cell.stopped or self._routed:
            cell = self._target(body)
        envelope = cell.system.envelope(cell, body, idempotency_key)
        if not cell.durable:  # a durable offer does not wait for the commit: put does
            try:
                if cell.mailbox.offer(envelope):  # the fast path: room, nobody waiting
                    return
            except GreenroomError as exc:  # closed: a dead letter, and ActorStopped
                raise cell.system.closed(cell, envelope, exc) from None
        await cell.system.put(cell, envelope, None)

    def tell_nowait(self, body: Message, *, idempotency_key: IdempotencyKey | None = None) -> None:
        """Send ``body`` without ever waiting (``idempotency_key``: as for :meth:`tell`).

        Raises:
            InvalidMessage: ``body`` is not a frozen, tagged Struct.
            MessageTooLarge: ``body`` encodes to more than the size limit.
            MailboxFull: the mailbox is full, whatever its overflow setting.
            ActorStopped: the actor is stopped.
            UsageError: ``idempotency_key`` is not a non-empty str or bytes.
        """
        cell = self._target(body)
        cell.system.put_nowait(cell, cell.system.envelope(cell, body, idempotency_key))

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

        ``idempotency_key``: as for :meth:`tell`. While the first is unacked,
        the mailbox drops a re-ask, which waits for the first one's reply (one
        in flight in this runtime is joined); once it was handled, the handler
        runs again, its ledger steps answered from their receipts: the asker
        gets an answer, and no step with an effect runs twice.

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
        cell = self._cell
        if cell.stopped or self._routed:
            cell = self._target(body)
        system = cell.system
        if timeout is None:
            timeout = system.ask_timeout
        envelope = system.envelope(cell, body, idempotency_key, timeout)
        loop = system.loop
        future: asyncio.Future[Any] = loop.create_future()
        envelope.reply = future
        slot = system.deadlines.add(future, timeout, cell.name, type(body))
        try:
            if idempotency_key is None or not _joined(cell, envelope.id, future):
                offered = False
                if not cell.durable:
                    try:
                        offered = cell.mailbox.offer(envelope)
                    except GreenroomError as exc:
                        raise system.closed(cell, envelope, exc) from None
                if not offered:
                    await system.put(cell, envelope, future)
            return await future
        finally:
            slot.pop(future, None)  # Deadlines.settle, inlined: every ask pays it


def _joined(cell: Cell, envelope_id: int, future: asyncio.Future[Any]) -> bool:
    """Join an ask of the same key to the same actor still in flight, or become the first.

    A joiner's future gets the first one's outcome, under its own timeout.
    """
    keyed = cell.keyed
    if keyed is None:
        keyed = cell.keyed = {}
    first = keyed.get(envelope_id)
    if first is not None and not first.done():
        first.add_done_callback(functools.partial(_copy_outcome, future))
        return True
    keyed[envelope_id] = future
    future.add_done_callback(functools.partial(_forget, keyed, envelope_id))
    return False


def _copy_outcome(target: asyncio.Future[Any], source: asyncio.Future[Any]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


def _forget(keyed: dict[int, asyncio.Future[Any]], envelope_id: int, future: object) -> None:
    if keyed.get(envelope_id) is future:
        del keyed[envelope_id]
