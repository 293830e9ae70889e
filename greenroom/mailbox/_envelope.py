"""The envelope: what a mailbox carries around a message body."""

from __future__ import annotations

import time

import msgspec

from greenroom.trace import attempt_span_id, current_span, new_id

__all__ = ["Envelope", "make_envelope"]


class Envelope(msgspec.Struct, kw_only=True, gc=False):
    """One message on its way to one actor.

    Attributes:
        id: unique 63-bit id; durable mailboxes dedupe on it, and it names
            the span of handling this message (first attempt).
        recipient: the receiving actor's name.
        body: the message, a frozen tagged :class:`~greenroom.Message`.
        sender: the sending actor's name, ``None`` from outside any actor.
        reply_to: for an ask, the address of the node awaiting the reply.
        correlation_id: for an ask, the key its reply is matched on.
        trace_id: the trace this message belongs to (a new one from outside).
        parent_span_id: the span that sent it, ``None`` for a root message.
        attempt: 1 on first delivery, incremented on every redelivery.
        created_at: wall-clock time of sending (seconds since the epoch).
        deadline: wall-clock time after which an answer is of no use, or ``None``.
    """

    id: int
    recipient: str
    body: object
    sender: str | None = None
    reply_to: str | None = None
    correlation_id: int | None = None
    trace_id: int
    parent_span_id: int | None = None
    attempt: int = 1
    created_at: float
    deadline: float | None = None

    @property
    def span_id(self) -> int:
        """The span of handling this delivery: the id itself on the first attempt,
        a value derived from id and attempt on later ones."""
        return attempt_span_id(self.id, self.attempt)


_time = time.time


def make_envelope(
    recipient: str,
    body: object,
    *,
    correlation_id: int | None = None,
    reply_to: str | None = None,
    deadline: float | None = None,
) -> Envelope:
    """An envelope for ``body`` that joins the current span's trace, or starts a new one."""
    msg_id = new_id()
    parent = current_span.get()
    if parent is None:
        if reply_to is None and correlation_id is None and deadline is None:
            return Envelope(
                id=msg_id, recipient=recipient, body=body, trace_id=msg_id, created_at=_time()
            )
        return Envelope(
            id=msg_id,
            recipient=recipient,
            body=body,
            reply_to=reply_to,
            correlation_id=correlation_id,
            trace_id=msg_id,
            created_at=_time(),
            deadline=deadline,
        )
    return Envelope(
        id=msg_id,
        recipient=recipient,
        body=body,
        sender=getattr(parent, "recipient", None) or getattr(parent, "actor", None),
        reply_to=reply_to,
        correlation_id=correlation_id,
        trace_id=parent.trace_id,
        parent_span_id=parent.span_id,
        created_at=_time(),
        deadline=deadline,
    )
