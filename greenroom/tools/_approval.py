"""Approval gates: a call that needs a person's approval is parked in the store, not awaited.

::

    gate = ApprovalGate(store, timeout=600.0)
    access = ToolAccess(registry, approvals=gate, interceptors=[Ledger(store)], ...)

A tool with ``requires_approval = True``, or any tool called under a grant
with ``requires_approval=True``, is *parked* when called: the call is
written to the store as a :class:`Ticket` (tool, input, grant, actor,
message, step, deadline) and ``ToolBox.call`` raises
:class:`ApprovalPending` naming the ticket. The handler catches it and
returns, so the actor goes on handling other messages. A timer
(``ctx.send_after``) sends the actor :class:`Expire` at the deadline.

A person (or another actor) sends the actor ``Approve(ticket=...)`` or
``Deny(ticket=..., reason=...)``; the actor passes it, and ``Expire``, to
``await toolbox.resolve(msg)``, which runs the approved call through the
rest of the chain (the interceptors, so the ledger too) and returns its
Output, or raises :class:`ApprovalDenied` / :class:`ApprovalExpired` /
:class:`TicketClosed`. The call runs as the step it was parked in, and the
ticket remembers the request that settled it (the causation of its
``Approve``/``Deny``, see :class:`~greenroom.Envelope`), so:

- a second ``Approve`` (or a ``Deny`` after an ``Approve``) gets
  :class:`TicketClosed` and runs nothing;
- the same ``Approve`` redelivered after a crash, or forwarded again by a
  router that was redelivered, or re-sent with the same idempotency key,
  runs the call again only through the ledger, which answers from its
  receipt (or fails closed);
- an ``Approve`` after the deadline expires the ticket instead, even if its
  ``Expire`` has not arrived yet;
- a redelivery of the request that parked the call (tickets are keyed by
  the step key, ``actor/request/step``, so a re-forward of it too) meets its ticket
  again: :class:`ApprovalPending` while pending, the recorded Output once
  done, the refusal once denied or expired. Nothing is parked twice.

Tickets live in the store: with a durable mailbox and ``SqliteStore`` a
parked call survives the process. Timers do not: call ``await
toolbox.restore()`` in ``on_start`` to re-arm the deadlines of the actor's
pending tickets (an ``Approve`` past the deadline is refused either way).
The grant's budget is spent when the call is parked; the approved call
runs under the grant recorded in the ticket.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from greenroom._errors import ErrorInfo, UsageError
from greenroom.store import Scope, Store, Tombstone, VersionConflict, Versioned
from greenroom.tools._call import Invocation
from greenroom.tools._effect_errors import (
    ApprovalDenied,
    ApprovalExpired,
    ApprovalPending,
    StepInputChanged,
    TicketClosed,
    UnknownTicket,
)
from greenroom.tools._errors import ToolError, ToolRefused, UnknownTool
from greenroom.tools._ticket import (
    APPROVAL_SCOPE,
    Deny,
    Expire,
    Settled,
    Ticket,
    TicketMessage,
    TicketState,
)
from greenroom.trace import current_span, format_id, new_id
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.tools._toolbox import ToolBox

__all__ = ["ApprovalGate", "settled"]

_ENCODE = msgspec.json.Encoder().encode
_FINAL: frozenset[TicketState] = frozenset({"done", "denied", "expired"})


class ApprovalGate:
    """Parks the calls that need approval, and settles them; give it to ``ToolAccess(approvals=)``.

    Args:
        store: where tickets live (``SqliteStore`` for parked calls that
            survive the process).
        timeout: seconds from parking to the deadline (default 3600.0).
        scope: the tickets' scope (default :data:`APPROVAL_SCOPE`).
        clock: wall-clock seconds since the epoch (default ``time.time``).

    Raises:
        UsageError: ``timeout`` is not a positive number.
    """

    def __init__(
        self,
        store: Store,
        *,
        timeout: float = 3600.0,
        scope: Scope[Ticket] = APPROVAL_SCOPE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(timeout, int | float) or not timeout > 0:
            raise UsageError(f"ApprovalGate timeout is in seconds and > 0, got {timeout!r}")
        self.store = store
        self.timeout = float(timeout)
        self.scope = scope
        self.clock = clock

    # -- parking ---------------------------------------------------------------

    async def park(self, box: ToolBox, invocation: Invocation) -> msgspec.Struct:
        """Park a fresh call (raise ApprovalPending), or answer a redelivered one from its ticket.

        Raises:
            ApprovalPending: the call is parked (now, or before).
            ApprovalDenied, ApprovalExpired: the ticket was settled so.
            StepInputChanged: the step's ticket is of another tool or input.
            ToolRefused: the call is made outside a handler (no step to park).
        """
        if invocation.message_id is None:
            raise ToolRefused(
                invocation.tool,
                invocation.actor,
                "it requires approval, and a call made outside a handler cannot be parked",
                "make the call from a handler",
            )
        key = invocation.key
        found = await self.store.read(self.scope, key)
        if not isinstance(found, Versioned):
            now = self.clock()
            fresh = Ticket(
                id=key,
                actor=invocation.actor,
                tool=invocation.tool,
                input=_ENCODE(invocation.input),
                input_hash=invocation.input_hash,
                grant=invocation.grant,
                delegation=invocation.delegation,
                message_id=invocation.message_id,
                step=invocation.step,
                trace_id=invocation.trace_id,
                created_at=now,
                deadline=now + self.timeout,
            )
            expected = found.version if isinstance(found, Tombstone) else 0
            try:
                await self.store.write(
                    self.scope,
                    key,
                    fresh,
                    expected=expected,
                    writer=invocation.actor,
                    trace_id=invocation.trace_id,
                )
            except VersionConflict:
                return await self.park(box, invocation)
            ticket = fresh
            box._ctx.log.bind(ticket=key, tool=ticket.tool, event="tools.parked").info(
                "{} parked a call of {} as ticket {}", ticket.actor, ticket.tool, key
            )
        else:
            ticket = found.value
            if ticket.tool != invocation.tool or ticket.input_hash != invocation.input_hash:
                raise StepInputChanged(
                    invocation.tool,
                    invocation.actor,
                    invocation.message_id,
                    invocation.step,
                    key,
                    ticket.tool,
                    invocation.input_hash,
                    ticket.input_hash,
                )
        if ticket.state in _FINAL:
            return self._outcome(box, ticket)
        if ticket.state == "pending":
            self._arm(box, ticket)
        raise ApprovalPending(ticket.tool, ticket.actor, key, ticket.deadline)

    def _arm(self, box: ToolBox, ticket: Ticket) -> None:
        if ticket.id not in box._timers:
            delay = max(0.0, ticket.deadline - self.clock())
            box._timers[ticket.id] = box._ctx.send_after(delay, Expire(ticket=ticket.id))

    async def restore(self, box: ToolBox) -> list[Ticket]:
        """Re-arm the deadline timers of ``box``'s actor's pending tickets; return those tickets."""
        pending = [
            record.value
            for _, record in await self.store.scan(self.scope, f"{box.name}/")
            if record.value.actor == box.name and record.value.state == "pending"
        ]
        for ticket in pending:
            self._arm(box, ticket)
        return pending

    # -- settling --------------------------------------------------------------

    async def resolve(self, box: ToolBox, msg: TicketMessage) -> msgspec.Struct:
        """Settle ``msg.ticket`` by ``msg``; see ``ToolBox.resolve``."""
        return (await self.resolve_named(box, msg))[1]

    async def resolve_named(self, box: ToolBox, msg: TicketMessage) -> tuple[str, msgspec.Struct]:
        """:meth:`resolve`, with the name of the tool that ran."""
        envelope = box._ctx.envelope
        # The request, not the envelope: an Approve forwarded again (its
        # router was redelivered) is the same settling message.
        settler = None if envelope is None else envelope.causation
        found = await self.store.read(self.scope, msg.ticket)
        if not isinstance(found, Versioned) or found.value.actor != box.name:
            raise UnknownTicket(box.name, msg.ticket)
        ticket, version = found.value, found.version
        if ticket.state == "pending":
            if isinstance(msg, Deny):
                state: TicketState = "denied"
            elif isinstance(msg, Expire) or self.clock() >= ticket.deadline:
                state = "expired"
            else:
                state = "approved"
            changes: dict[str, Any] = {"state": state, "settled_by": settler}
            if not isinstance(msg, Expire):
                changes["by"] = msg.by
            if isinstance(msg, Deny):
                changes["reason"] = msg.reason
            ticket = msgspec.structs.replace(ticket, **changes)
            written = await self.store.write(
                self.scope, ticket.id, ticket, expected=version, writer=box.name
            )
            version = written.version
            timer = box._timers.pop(ticket.id, None)
            if timer is not None:
                timer.cancel()
            box._ctx.log.bind(ticket=ticket.id, tool=ticket.tool, event=f"tools.{state}").info(
                "ticket {} {}", ticket.id, state
            )
        elif settler is None or ticket.settled_by != settler:
            raise TicketClosed(ticket.tool, box.name, ticket.id, ticket.state)
        # This message settled the ticket: now, or before a crash or a failed attempt.
        if ticket.state != "approved":
            return ticket.tool, self._outcome(box, ticket)
        try:
            output = await self._run(box, ticket)
        except Exception as exc:
            # It stays approved: a retry of this message runs it again, through the ledger.
            failed = msgspec.structs.replace(
                ticket, error=ErrorInfo.from_exception(exc, with_traceback=False)
            )
            try:
                await self.store.write(self.scope, ticket.id, failed, expected=version)
            except Exception as note:
                logger.bind(
                    actor=box.name, ticket=ticket.id, event="tools.ticket_note_failed"
                ).warning("could not note the failure of ticket {}: {!r}", ticket.id, note)
            raise
        done = msgspec.structs.replace(ticket, state="done", output=_ENCODE(output), error=None)
        await self.store.write(self.scope, ticket.id, done, expected=version, writer=box.name)
        return ticket.tool, output

    def _outcome(self, box: ToolBox, ticket: Ticket) -> msgspec.Struct:
        """The answer of a final ticket: its Output, or the refusal."""
        if ticket.state == "denied":
            raise ApprovalDenied(ticket.tool, ticket.actor, ticket.id, ticket.reason or "")
        if ticket.state == "expired":
            raise ApprovalExpired(ticket.tool, ticket.actor, ticket.id, ticket.deadline)
        tool = box._access.registry.get(ticket.tool)
        if tool is None or ticket.output is None:
            raise UnknownTool(ticket.tool, ticket.actor, box.granted())
        output: msgspec.Struct = msgspec.json.decode(ticket.output, type=tool.Output)
        return output

    async def _run(self, box: ToolBox, ticket: Ticket) -> msgspec.Struct:
        """Run the approved call as the step it was parked in, through the interceptors."""
        tool = box._access.registry.get(ticket.tool)
        if tool is None:
            raise UnknownTool(ticket.tool, ticket.actor, box.granted())
        input = msgspec.json.decode(ticket.input, type=tool.Input)
        span = current_span.get()
        envelope = box._ctx.envelope
        invocation = Invocation(
            call_id=new_id(),
            tool=tool.name,
            effect=tool.effect,
            actor=box.name,
            grant=ticket.grant,
            delegation=ticket.delegation,
            input=input,
            input_hash=hashlib.sha256(_ENCODE(input)).hexdigest(),
            message_id=ticket.message_id,
            attempt=1 if envelope is None else envelope.attempt,
            step=ticket.step,
            trace_id=None if span is None else format_id(span.trace_id),
            output_type=tool.Output,
            requires_approval=True,
            ticket=ticket.id,
        )
        return await box._resume(tool, invocation)


async def settled(box: ToolBox, msg: TicketMessage) -> Settled:
    """``box.resolve(msg)`` as a :class:`Settled` message; see ``ToolBox.settle``."""
    try:
        name, output = await box._gate().resolve_named(box, msg)
    except UnknownTicket:
        raise
    except ApprovalDenied as exc:
        return Settled(ticket=msg.ticket, tool=exc.tool, state="denied", reason=exc.reason)
    except ApprovalExpired as exc:
        return Settled(ticket=msg.ticket, tool=exc.tool, state="expired")
    except TicketClosed as exc:
        return Settled(ticket=msg.ticket, tool=exc.tool, state="closed", reason=exc.state)
    except ToolError as exc:
        info = ErrorInfo.from_exception(exc, with_traceback=False)
        return Settled(ticket=msg.ticket, tool=exc.tool, state="failed", error=info)
    return Settled(ticket=msg.ticket, tool=name, state="done", output=_ENCODE(output))
