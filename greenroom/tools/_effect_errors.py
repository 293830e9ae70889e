"""The errors of approval gates and the side-effect ledger; drawn in ``_errors``' tree.

Both groups are :class:`NotRetryable`: a retry of the same message would
meet the same parked ticket, or the same half-done step, so the supervisor
dead-letters it at once instead.
"""

from __future__ import annotations

from greenroom._errors import NotRetryable
from greenroom.tools._errors import ToolError

__all__ = [
    "ApprovalDenied",
    "ApprovalError",
    "ApprovalExpired",
    "ApprovalPending",
    "LedgerError",
    "StepInputChanged",
    "StepInterrupted",
    "TicketClosed",
    "UnknownTicket",
]


class ApprovalError(ToolError, NotRetryable):
    """A call that needs approval did not run: it waits for it, or was refused it.

    ``ticket`` names the parked call (``actor/message/step``), ``actor`` the
    actor that made it. Not retryable: the same message would meet the same
    ticket.
    """

    def __init__(self, message: str, tool: str, actor: str, ticket: str) -> None:
        super().__init__(message)
        self.tool = tool
        self.actor = actor
        self.ticket = ticket


class ApprovalPending(ApprovalError):
    """The call is parked as ``ticket`` until an Approve, a Deny, or its ``deadline``.

    The tool did not run. Catch it in the handler and return, so the actor
    goes on handling other messages; the call resumes when the actor hands
    the ``Approve`` to ``ToolBox.resolve``. ``deadline`` is wall-clock
    seconds since the epoch.
    """

    def __init__(self, tool: str, actor: str, ticket: str, deadline: float) -> None:
        super().__init__(
            f"the call of tool {tool!r} by {actor} waits for approval as ticket {ticket!r} "
            f"(deadline {deadline:.3f}); the tool has not run; catch ApprovalPending and "
            "return, then pass Approve/Deny/Expire messages to ToolBox.resolve",
            tool,
            actor,
            ticket,
        )
        self.deadline = deadline


class ApprovalDenied(ApprovalError):
    """A person denied the ticket, for ``reason``; the tool did not run and never will."""

    def __init__(self, tool: str, actor: str, ticket: str, reason: str) -> None:
        super().__init__(
            f"the call of tool {tool!r} by {actor} (ticket {ticket!r}) was denied: {reason}; "
            "the tool did not run; do not call it again for this request",
            tool,
            actor,
            ticket,
        )
        self.reason = reason


class ApprovalExpired(ApprovalError):
    """The ticket's ``deadline`` passed before it was approved; the tool did not run."""

    def __init__(self, tool: str, actor: str, ticket: str, deadline: float) -> None:
        super().__init__(
            f"the call of tool {tool!r} by {actor} (ticket {ticket!r}) expired unapproved at "
            f"{deadline:.3f}; the tool did not run and the ticket can no longer be approved; "
            "make a new call to ask again",
            tool,
            actor,
            ticket,
        )
        self.deadline = deadline


class TicketClosed(ApprovalError):
    """The ticket was settled (``state``) by another message; nothing ran now."""

    def __init__(self, tool: str, actor: str, ticket: str, state: str) -> None:
        super().__init__(
            f"ticket {ticket!r} (tool {tool!r}, actor {actor}) is {state} already, "
            "settled by another message; nothing ran; ignore this message",
            tool,
            actor,
            ticket,
        )
        self.state = state


class UnknownTicket(ApprovalError):
    """No ticket of this id is parked for ``actor`` (a typo, or another actor's ticket)."""

    def __init__(self, actor: str, ticket: str) -> None:
        super().__init__(
            f"{actor} has no parked call with ticket {ticket!r}; send the Approve or Deny "
            "to the actor named in the ticket, with the id from its ApprovalPending",
            "(unknown)",
            actor,
            ticket,
        )


class LedgerError(ToolError, NotRetryable):
    """The side-effect ledger refuses to run step ``step`` of request ``message_id``.

    Not retryable: the message is dead-lettered at once, for a person to
    decide. ``message_id`` is the request's causation id
    (``Envelope.causation``); ``key`` is the ledger key (``actor/request/step``).
    """

    def __init__(
        self, message: str, tool: str, actor: str, message_id: int | None, step: int, key: str
    ) -> None:
        super().__init__(message)
        self.tool = tool
        self.actor = actor
        self.message_id = message_id
        self.step = step
        self.key = key


class StepInterrupted(LedgerError):
    """A step has an intent but no receipt, and its tool must not run again by itself.

    The tool may or may not have had its effect (the process died, or the
    tool raised, between intent and receipt). ``effect`` is ``"irreversible"``
    or ``"compensable"``; ``undo`` names the undo tool of a compensable one.
    """

    def __init__(
        self,
        tool: str,
        actor: str,
        message_id: int | None,
        step: int,
        key: str,
        effect: str,
        undo: str | None,
    ) -> None:
        fix = (
            f"check whether it took effect; if it did, undo it with tool {undo!r} or record "
            "its receipt (Ledger.complete), else Ledger.forget the step; then redrive the "
            "dead letter"
            if undo is not None
            else "check whether it took effect; if it did, record its receipt "
            "(Ledger.complete), else Ledger.forget the step; then redrive the dead letter"
        )
        super().__init__(
            f"step {step} of message {message_id} in {actor}: {effect} tool {tool!r} has an "
            f"intent but no receipt (ledger key {key!r}), so it may have run; it is not run "
            f"again automatically; {fix}",
            tool,
            actor,
            message_id,
            step,
            key,
        )
        self.effect = effect
        self.undo = undo


class StepInputChanged(LedgerError):
    """A redelivered step calls another tool or input than its recorded intent; nothing ran."""

    def __init__(
        self,
        tool: str,
        actor: str,
        message_id: int | None,
        step: int,
        key: str,
        recorded_tool: str,
        input_hash: str,
        recorded_hash: str,
    ) -> None:
        super().__init__(
            f"step {step} of message {message_id} in {actor} now calls tool {tool!r} with "
            f"input {input_hash[:12]}..., but its recorded intent (ledger key {key!r}) is tool "
            f"{recorded_tool!r} with input {recorded_hash[:12]}...; nothing ran; make the "
            "handler derive its tool calls from the message and recorded outputs only",
            tool,
            actor,
            message_id,
            step,
            key,
        )
        self.recorded_tool = recorded_tool
        self.input_hash = input_hash
        self.recorded_hash = recorded_hash
