"""Approval tickets as data: the parked call in the store, and the messages that settle it.

A ticket's life::

    pending ──Approve──▶ approved ──the call ran──▶ done (its Output recorded)
       │
       ├──Deny──▶ denied
       └──Expire (its deadline timer), or an Approve past the deadline──▶ expired

Every state but ``pending`` and ``approved`` is final. The request that
settled a ticket is remembered (``settled_by``, the causation id of its
message, ``Envelope.causation``): a redelivery of that message, or the same
request forwarded again or re-sent with its idempotency key, gets the same
outcome again; any other message gets :class:`TicketClosed`.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

from greenroom._errors import ErrorInfo
from greenroom.mailbox import Message
from greenroom.store import Scope
from greenroom.tools._grant import Grant

__all__ = [
    "APPROVAL_SCOPE",
    "Approve",
    "Deny",
    "Expire",
    "Settled",
    "Ticket",
    "TicketMessage",
    "TicketState",
]

TicketState: TypeAlias = Literal["pending", "approved", "done", "denied", "expired"]
"""Where a ticket is in its life (see the module docs)."""


class Approve(Message, frozen=True, kw_only=True):
    """Approve the parked call ``ticket``: the actor's ``ToolBox.resolve`` runs it, once.

    ``by`` names who approved (kept on the ticket), ``None`` if unknown.
    """

    ticket: str
    by: str | None = None


class Deny(Message, frozen=True, kw_only=True):
    """Refuse the parked call ``ticket`` for ``reason``; it never runs."""

    ticket: str
    reason: str
    by: str | None = None


class Expire(Message, frozen=True, kw_only=True):
    """The deadline of ``ticket`` passed: sent by the ticket's timer to the actor itself."""

    ticket: str


TicketMessage: TypeAlias = Approve | Deny | Expire
"""The messages ``ToolBox.resolve`` takes: annotate one handler with it."""


class Ticket(msgspec.Struct, frozen=True, kw_only=True):
    """A parked call, kept in the store under its step key (``actor/request/step``).

    Attributes:
        id: the ticket id, the step key of the call.
        actor, tool: who called what.
        input: the validated Input, as JSON.
        input_hash: sha256 of that JSON, as in ``Invocation.input_hash``.
        grant, delegation: the grant the call was made under (its budget
            was spent when it was parked).
        message_id, step: the request (causation id) and step it was parked
            in; the approved call runs as that step (so the ledger keys it the same).
        trace_id: the trace of the parking call.
        created_at, deadline: wall-clock seconds since the epoch.
        state: see :data:`TicketState`.
        settled_by: the causation id of the message that settled it.
        by: who approved or denied it, as the message said.
        reason: why it was denied.
        output: the Output as JSON, once ``done``.
        error: the last failure of the approved call, if any (it stays ``approved``).
    """

    id: str
    actor: str
    tool: str
    input: bytes
    input_hash: str
    grant: Grant
    delegation: int | None
    message_id: int
    step: int
    trace_id: str | None
    created_at: float
    deadline: float
    state: TicketState = "pending"
    settled_by: int | None = None
    by: str | None = None
    reason: str | None = None
    output: bytes | None = None
    error: ErrorInfo | None = None


APPROVAL_SCOPE: Scope[Ticket] = Scope("greenroom.approvals", Ticket, owner="greenroom.approvals")
"""Where an approval gate keeps its tickets, by ticket id."""


class Settled(Message, frozen=True, kw_only=True):
    """How a ticket ended, as a message an actor can send (to itself, or a requester).

    Made by ``ToolBox.settle``. ``state`` is ``"done"`` (``output`` holds
    the Output as JSON: ``msgspec.json.decode(s.output, type=Out)``),
    ``"denied"``, ``"expired"``, ``"closed"`` (settled by another message
    before) or ``"failed"`` (``error`` says why; the ticket stays approved).
    """

    ticket: str
    tool: str
    state: Literal["done", "denied", "expired", "closed", "failed"]
    output: bytes | None = None
    reason: str | None = None
    error: ErrorInfo | None = None
