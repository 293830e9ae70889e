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
being replaced.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from greenroom._errors import ErrorInfo, UsageError

if TYPE_CHECKING:
    from greenroom.actors._ref import ActorRef
    from greenroom.actors._runtime import Runtime
    from greenroom.mailbox import Envelope

__all__ = ["Deferred", "send_onward"]


async def send_onward(
    runtime: Runtime,
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
    envelope = runtime._envelope(cell, body)
    envelope.reply_to = original.reply_to
    envelope.correlation_id = original.correlation_id
    envelope.causation_id = original.causation
    deadline = envelope.deadline = original.deadline
    if parent is not None:
        envelope.trace_id, envelope.parent_span_id = parent
    timeout = None if deadline is None else max(deadline - time.time(), 0.0)
    await runtime._put(cell, envelope, timeout)


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

    __slots__ = ("_envelope", "_runtime", "_settled")

    def __init__(self, runtime: Runtime, envelope: Envelope) -> None:
        self._runtime = runtime
        self._envelope = envelope
        self._settled = False

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
        return self._envelope.correlation_id is not None

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
        await send_onward(self._runtime, envelope, target, payload, parent=parent)
        self._settled = True

    def reply(self, value: object) -> None:
        """Answer the asker with ``value`` now (a reply after its timeout is dropped).

        Raises:
            UsageError: it was settled already.
        """
        self._check()
        self._settled = True
        if self._envelope.correlation_id is not None:
            self._runtime._reply(self._envelope, value)

    def fail(self, error: BaseException) -> None:
        """Fail the asker's ask with ``error`` (raised from its ``ask``); a told message
        becomes a dead letter with ``error``.

        Raises:
            UsageError: it was settled already.
        """
        self._check()
        self._settled = True
        envelope = self._envelope
        if envelope.correlation_id is not None:
            self._runtime._reply_error(envelope, error)
        else:
            info = ErrorInfo.from_exception(error)
            self._runtime._dead_letter(envelope, envelope.recipient, "undeliverable", info)

    def _check(self) -> None:
        if self._settled:
            raise UsageError(
                f"this Deferred ({type(self._envelope.body).__qualname__}) was settled already; "
                "forward, reply or fail it once"
            )
