"""The envelope: what a mailbox carries around a message body."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING, Any, TypeAlias

import msgspec

from greenroom._errors import UsageError
from greenroom.trace import attempt_span_id, current_span, new_id

__all__ = ["Envelope", "IdempotencyKey", "keyed_id", "make_envelope"]

IdempotencyKey: TypeAlias = str | bytes
"""A caller's name for one request, the same on every re-send (``idempotency_key=``)."""

_MASK = (1 << 63) - 1
_KEY_LIMIT = 1024


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
        causation_id: the id of the request this message serves, ``None``
            when it serves its own (see :attr:`causation` and the rules below).
        reply: for an ask made in this process, the future its reply settles
            (the reply target travels with the message; ``reply_to`` and
            ``correlation_id`` are its address for another process). Never
            encoded: it is ``None`` in every envelope decoded from bytes.

    Causation, the rules. The *causation* of an envelope names the request
    it works for; the side-effect ledger and the approval gate key a
    handler's steps by it (``actor/causation/step``), so a request handled
    again under another envelope still meets the steps it took before.

    * A ``tell`` or ``ask`` starts a request of its own: ``causation_id`` is
      ``None`` and the causation is the envelope's ``id``. This holds inside
      a handler too: two messages an actor sends while handling one
      request are two requests, never sharing step keys.
    * ``ctx.forward`` (and ``Deferred.forward``, hence the agent Router and
      Coordinator) hands the *same* request on: the new envelope keeps the
      original's causation. A router redelivered after a crash forwards
      again under a new envelope id and the same causation, so the worker's
      ledger answers its steps from their receipts instead of running them
      again. Every forward of one delivery serves that one request.
    * With an idempotency key (``tell(msg, idempotency_key=k)``), the id is
      :func:`keyed_id` ``(recipient, k)``: a re-send of the same key to the
      same actor is the same envelope id (which durable and Redis mailboxes
      dedupe) and the same causation (which the ledger keys by). A keyed
      *tell* carries ``causation_id == id``, which marks it to be remembered
      after its ack for the mailbox's dedupe window
      (:attr:`remember_after_ack`); a keyed *ask* carries ``None`` (same
      causation): it is deduped while pending (the re-ask gets the
      original's reply), and a re-ask after it was handled is delivered
      again, its ledger steps answered from their receipts, so the asker
      still gets an answer.
    * Remote asks and tells (``greenroom.cluster``) carry the field in the
      entry header, so the rules hold across nodes; dead letters keep it,
      so a redriven letter is still the same request.

    New fields only get defaults: an envelope encoded before a field
    existed still decodes.
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
    causation_id: int | None = None
    if TYPE_CHECKING:
        reply: asyncio.Future[Any] | None = None
    else:
        reply: None = None  # decoders accept only nil: a live future never crosses bytes

    @property
    def span_id(self) -> int:
        """The span of handling this delivery: the id itself on the first attempt,
        a value derived from id and attempt on later ones."""
        return attempt_span_id(self.id, self.attempt)

    @property
    def causation(self) -> int:
        """The request this message serves: ``causation_id``, or ``id`` when that is ``None``."""
        causation = self.causation_id
        return self.id if causation is None else causation

    @property
    def remember_after_ack(self) -> bool:
        """Whether this is a tell sent with an idempotency key (``causation_id == id``).

        Durable and Redis mailboxes remember such an id after its ack, for
        their dedupe window, so a re-send after the original was handled
        is dropped too; other ids are deduped only while unacked.
        """
        return self.causation_id == self.id


def keyed_id(recipient: str, key: IdempotencyKey) -> int:
    """The envelope id of a message to ``recipient`` sent with idempotency key ``key``.

    The same in every process and every run: a 63-bit blake2b of the
    recipient and the key (a ``str`` key is hashed as its UTF-8). Ids made
    so and ids made by :func:`~greenroom.trace.new_id` collide with a
    chance of about ``n**2 / 2**64`` for ``n`` ids.

    Raises:
        UsageError: ``key`` is not a non-empty ``str`` or ``bytes`` of at
            most 1024 characters or bytes.
    """
    if isinstance(key, str):
        data = key.encode("utf-8", "surrogatepass")
    elif isinstance(key, bytes):
        data = key
    else:
        raise UsageError(
            f"an idempotency key is a str or bytes naming the request, got "
            f"{type(key).__qualname__}; pass e.g. idempotency_key=f'order-{{order.id}}'"
        )
    if not 0 < len(key) <= _KEY_LIMIT:
        raise UsageError(
            f"an idempotency key has 1 to {_KEY_LIMIT} characters, got {len(key)}; "
            "name the request briefly (or hash a long name yourself)"
        )
    name = recipient.encode("utf-8", "surrogatepass")
    digest = hashlib.blake2b(
        len(name).to_bytes(4, "big") + name + data, digest_size=8, person=b"greenroom.key"
    ).digest()
    return int.from_bytes(digest, "big") & _MASK or 1


_time = time.time


def make_envelope(
    recipient: str,
    body: object,
    *,
    correlation_id: int | None = None,
    reply_to: str | None = None,
    deadline: float | None = None,
    key: IdempotencyKey | None = None,
) -> Envelope:
    """An envelope for ``body`` that joins the current span's trace, or starts a new one.

    With ``key`` (an idempotency key) the id is :func:`keyed_id`
    ``(recipient, key)``; a tell (no ``reply_to``) is then marked to be
    remembered after its ack (see :class:`Envelope`).

    Raises:
        UsageError: ``key`` is not a valid idempotency key.
    """
    msg_id = new_id() if key is None else keyed_id(recipient, key)
    parent = current_span.get()
    if parent is None:
        if reply_to is None and correlation_id is None and deadline is None:
            envelope = Envelope(
                id=msg_id, recipient=recipient, body=body, trace_id=msg_id, created_at=_time()
            )
        else:
            envelope = Envelope(
                id=msg_id,
                recipient=recipient,
                body=body,
                reply_to=reply_to,
                correlation_id=correlation_id,
                trace_id=msg_id,
                created_at=_time(),
                deadline=deadline,
            )
    else:
        envelope = Envelope(
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
    if key is not None and reply_to is None:  # a keyed tell: remembered after its ack
        envelope.causation_id = msg_id
    return envelope
