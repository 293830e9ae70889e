"""Forwarding and deferral: a message answered by another actor, or later.

``ctx.forward(target)`` hands the message being handled to ``target``, which
answers the original asker (Akka's ``forward``). ``ctx.defer()`` takes the
ask out of the running handler as a :class:`Deferred` (OTP's
``{noreply, State}`` and its ``From``), to forward, answer or fail from any
later handler of the same actor; a router holds messages so while their
worker is replaced. Both keep the ask, ``deadline`` and causation, so the
side-effect ledger and the approval gate see one request (see
:class:`~greenroom.Envelope`).
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING

from greenroom._errors import GreenroomError, UsageError

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
    """Send ``body`` to ``target`` in a new envelope with ``original``'s ask, deadline, causation.

    The envelope is a child of ``parent`` (``(trace_id, span_id)``; ``None``:
    the current span). A full mailbox is waited on until the deadline
    (without one, as ``tell`` waits).

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
    until = envelope.reply  # a local ask: bounded by the asker's own deadline
    if until is not None or deadline is None:
        await system.put(cell, envelope, until)
        return
    # An ask from another process has no future here: its deadline gets one.
    until = system.loop.create_future()
    timeout = max(deadline - time.time(), 0.0)
    slot = system.deadlines.add(until, timeout, cell.name, type(body))
    try:
        await system.put(cell, envelope, until)
    finally:
        system.deadlines.settle(slot, until)
        until.cancel()


class Deferred:
    """A delivery whose answer was deferred with ``ctx.defer()``: settle it exactly once.

    ``forward`` it to another actor (which answers), ``reply`` to it now, or
    ``fail`` its ask. For a told message, ``forward`` is a tell, ``reply``
    does nothing and ``fail`` makes it a dead letter (``"undeliverable"``).

    An ask never settled fails with :class:`ActorStopped` when its actor
    stops for good (if the Deferred is still held), or with the asker's
    :class:`AskTimeout` at its deadline, whichever comes first. A restart
    settles nothing: settle in ``on_stop`` what the next instance will not.
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

        As ``ActorContext.forward``, the new envelope a child of the deferred
        delivery's span. A failed send leaves the deferral unsettled.

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
        """Fail the ask with ``error`` (raised from the asker's ``ask``), or dead-letter a tell.

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
