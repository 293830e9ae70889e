"""Forwarding: a message handed on to another actor, which answers the original asker.

``ctx.forward(target)`` (inside a handler) sends the message being handled
on to ``target`` in a new envelope that keeps the ask: its ``reply_to``,
``correlation_id`` and ``deadline``. The target's return value, or its
failure, reaches the asker exactly as if the asker had asked the target:
:class:`HandlerError` after the target's retries, :class:`ActorStopped` if
it stops with the message queued, :class:`UnknownMessage` if it has no
handler. The forwarder's own return value is then not sent (Akka's
``forward``). The new envelope is a child span of the current one, in the
same trace, and serves the same request: it keeps the original's
*causation* (``Envelope.causation``), which the side-effect ledger and the
approval gate key a handler's steps by. So a forwarder redelivered after a
crash, which forwards again under a new envelope id, does not make the
target run its irreversible steps again: they are answered from their
receipts (or fail closed with ``StepInterrupted``). See
:class:`~greenroom.Envelope` for the rules.

``ctx.defer()`` takes the ask out of the running handler without sending it
anywhere yet, as a :class:`Deferred` (OTP's ``{noreply, State}`` and its
``From``): forward it, answer it or fail it later, from any later handler
of the same actor. A router uses it to hold messages while their worker is
being replaced. An ask deferred and never settled fails with
:class:`ActorStopped` when its actor stops, or with the asker's
:class:`AskTimeout` at its deadline, whichever comes first.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

import anyio

from greenroom._errors import AskTimeout, GreenroomError, UsageError

if TYPE_CHECKING:
    from greenroom.actors._cell import Cell
    from greenroom.actors._ref import ActorRef
    from greenroom.mailbox import Envelope

__all__ = ["Deferred", "send_onward"]


async def send_onward(
    original: Envelope,
    target: ActorRef,
    body: object,
    *,
    parent: tuple[int, int] | None,
) -> None:
    """Send ``body`` to ``target`` in a new envelope carrying ``original``'s ask, deadline
    and causation.

    ``parent`` is the ``(trace_id, span_id)`` the new envelope is a child
    of; ``None`` means the current span. A full mailbox is waited on until
    ``original``'s deadline (without one, as ``tell`` waits).

    Raises:
        InvalidMessage, MessageTooLarge: as ``tell``.
        MailboxFull: the target's mailbox is full and its overflow is ``"fail"``.
        ActorStopped: the target is stopped.
        AskTimeout: the deadline passed while waiting for mailbox room.
    """
    cell = target._target(body)
    system = cell.system
    envelope = system.envelope(cell, body)
    envelope.reply = original.reply
    envelope.reply_to = original.reply_to
    envelope.correlation_id = original.correlation_id
    envelope.causation_id = original.causation
    deadline = envelope.deadline = original.deadline
    if parent is not None:
        envelope.trace_id, envelope.parent_span_id = parent
    if not cell.durable:
        try:
            if cell.mailbox.offer(envelope):
                return
        except GreenroomError as exc:
            raise system.closed(cell, envelope, exc) from None
    if envelope.reply is not None or deadline is None:
        await system.put(cell, envelope, envelope.reply)  # bounded by the ask's own timer
        return
    timeout = max(deadline - time.time(), 0.0)  # an ask from another process: its deadline
    try:
        with anyio.fail_after(timeout):
            await system.put(cell, envelope, None)
    except TimeoutError:
        raise AskTimeout(cell.name, type(body).__qualname__, timeout) from None


class Deferred:
    """A delivery whose answer was deferred with ``ctx.defer()``: settle it exactly once.

    ``forward`` hands the message on to another actor (which answers the
    asker), ``reply`` answers the asker now, ``fail`` fails its ask with an
    error. For a message that was told, not asked, ``forward`` is a tell,
    ``reply`` does nothing and ``fail`` makes it a dead letter
    (``"undeliverable"``), since nobody waits to hear of it.

    A deferred ask that is never settled ends with the asker's
    :class:`AskTimeout`; an actor that holds deferrals should settle them in
    ``on_stop`` (``fail(ActorStopped(...))``), which also runs before a restart.
    """

    __slots__ = ("__weakref__", "_cell", "_envelope", "_settled")

    def __init__(self, cell: Cell, envelope: Envelope) -> None:
        self._cell = cell
        self._envelope = envelope
        self._settled = False
        if self.is_ask:  # failed with ActorStopped if its actor stops first
            if cell.deferred is None:
                cell.deferred = weakref.WeakSet()
            cell.deferred.add(self)

    def __repr__(self) -> str:
        state = "settled" if self._settled else "pending"
        return f"<Deferred {type(self._envelope.body).__qualname__} {state}>"

    @property
    def body(self) -> object:
        """The message whose answer was deferred."""
        return self._envelope.body

    @property
    def envelope(self) -> Envelope:
        """Its envelope as delivered: trace, deadline, and the ask if it was one."""
        return self._envelope

    @property
    def is_ask(self) -> bool:
        """Whether someone waits for an answer (the message was asked, not told)."""
        envelope = self._envelope
        return envelope.reply is not None or envelope.correlation_id is not None

    @property
    def settled(self) -> bool:
        """Whether it was forwarded, answered or failed already."""
        return self._settled

    async def forward(self, target: ActorRef, body: object | None = None) -> None:
        """Hand the message (or ``body`` instead) to ``target``, which answers the asker.

        The new envelope is a child of the deferred delivery's span and
        keeps its deadline. If sending fails, the deferral stays unsettled:
        forward it elsewhere, or ``fail`` it.

        Raises:
            UsageError: it was settled already.
            ActorStopped, MailboxFull, AskTimeout, InvalidMessage,
                MessageTooLarge: as ``ActorContext.forward``.
        """
        self._check()
        envelope = self._envelope
        payload = envelope.body if body is None else body
        parent = (envelope.trace_id, envelope.span_id)
        await send_onward(envelope, target, payload, parent=parent)
        self._done()

    def reply(self, value: object) -> None:
        """Answer the asker with ``value`` now (a reply after its timeout is dropped).

        Raises:
            UsageError: it was settled already.
        """
        self._check()
        self._done()
        self._cell.system.reply(self._envelope, value)

    def fail(self, error: BaseException) -> None:
        """Fail the asker's ask with ``error`` (raised from its ``ask``); a told message
        becomes a dead letter with ``error``.

        Raises:
            UsageError: it was settled already.
        """
        self._check()
        self._done()
        envelope = self._envelope
        if self.is_ask:
            self._cell.system.fail_ask(envelope, error)
        else:
            self._cell.system.dead_letter(envelope, envelope.recipient, "undeliverable", error)

    def _done(self) -> None:
        self._settled = True
        if self._cell.deferred is not None:
            self._cell.deferred.discard(self)

    def _check(self) -> None:
        if self._settled:
            raise UsageError(
                f"this Deferred ({type(self._envelope.body).__qualname__}) was settled already; "
                "forward, reply or fail it once"
            )
