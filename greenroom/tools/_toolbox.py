"""ToolBox: an actor's granted tools, reached with ``self.ctx.service(ToolBox)``."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import msgspec

from greenroom._errors import ErrorInfo, GreenroomError, UsageError
from greenroom.tools._approval import settled
from greenroom.tools._arguments import Arguments
from greenroom.tools._call import Invocation, Proceed, ToolCall, emit, log_failure
from greenroom.tools._delegation import Delegating
from greenroom.tools._errors import (
    ArgumentNotAllowed,
    GrantExpired,
    GrantRevoked,
    ToolFailed,
    ToolInputError,
    ToolNotGranted,
    ToolOutputError,
    ToolRefused,
    UnknownTool,
)
from greenroom.tools._grant import Delegation, Grant
from greenroom.tools._schema import ToolDefinition
from greenroom.tools._spans import trace_call
from greenroom.tools._tool import Tool
from greenroom.trace import current_span, current_tracer, format_id, new_id
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors import ActorContext, Timer
    from greenroom.mailbox import Envelope
    from greenroom.tools._access import ToolAccess
    from greenroom.tools._approval import ApprovalGate
    from greenroom.tools._ticket import Settled, Ticket, TicketMessage

__all__ = ["ToolBox"]

InT = TypeVar("InT", bound=msgspec.Struct)
OutT = TypeVar("OutT", bound=msgspec.Struct)

_ENCODE = msgspec.json.Encoder().encode


class _Held:
    """The grant a call runs under: configured (``delegation is None``) or delegated."""

    __slots__ = ("delegation", "grant")

    def __init__(self, grant: Grant, delegation: int | None) -> None:
        self.grant = grant
        self.delegation = delegation


class ToolBox(Delegating):
    """One actor instance's tools: its configured grants and the delegations it accepted.

    Made on the first ``self.ctx.service(ToolBox)`` of an instance and
    released when the instance stops or restarts, which revokes the
    delegations it accepted (and drops its approval deadline timers:
    :meth:`restore` re-arms them). Use it from the actor's own handlers.
    """

    __slots__ = (
        "_accepted",
        "_access",
        "_ctx",
        "_grants",
        "_message",
        "_step",
        "_timers",
        "name",
    )

    def __init__(self, access: ToolAccess, ctx: ActorContext) -> None:
        self._access = access
        self._ctx = ctx
        self.name = ctx.name
        self._grants = access.configured(ctx.principal)
        self._accepted: dict[int, str] = {}  # delegation id -> tool, in acceptance order
        self._message: Envelope | None = None  # the delivery the steps count in
        self._step = 0
        self._timers: dict[str, Timer] = {}  # ticket -> its deadline timer

    # -- what it holds ----------------------------------------------------

    def granted(self) -> tuple[str, ...]:
        """The tools this actor holds a grant of (configured, then accepted delegations).

        A grant held may still refuse a call: expired, spent, or narrowed.
        """
        names = dict.fromkeys(self._grants)
        names.update(dict.fromkeys(self._accepted.values()))
        return tuple(names)

    def definitions(self) -> list[ToolDefinition]:
        """The OpenAI tools entries of the granted tools: what to offer a model."""
        registry = self._access.registry
        return [tool.definition() for n in self.granted() if (tool := registry.get(n))]

    # -- calls --------------------------------------------------------------

    async def call(
        self, name: str, arguments: Arguments, *, under: Delegation | None = None
    ) -> msgspec.Struct:
        """Call tool ``name`` with a model's ``arguments`` (JSON text or a dict).

        The grant is the actor's configured grant of the tool, else the
        delegation ``under``, else the delegation for the tool it accepted
        last. The call is recorded (``ToolAccess(on_call=...)``) whatever
        its outcome; a refusal is logged and the tool does not run.

        Returns:
            the tool's Output.

        Raises:
            UnknownTool: no tool is registered under ``name``.
            ToolNotGranted: the actor holds no grant of it.
            GrantExpired: the grant has expired.
            GrantRevoked: the delegation ``under`` was revoked or is not held.
            ToolInputError: the arguments do not validate into the Input.
            ArgumentNotAllowed: an argument is outside the grant's narrowing.
            BudgetExhausted: the grant (or one it was narrowed from) is spent.
            ToolFailed: the tool raised something other than a GreenroomError.
            ToolOutputError: the tool returned something that is not its Output.
            GreenroomError: the tool or an interceptor raised one (as is).
        """
        return await self._call(name, arguments, False, under)

    async def call_typed(
        self, tool: Tool[InT, OutT], input: InT, *, under: Delegation | None = None
    ) -> OutT:
        """Call ``tool`` (registered in the access) with an ``Input`` built in code.

        Checked and recorded exactly as :meth:`call`; typed end to end.
        """
        result = await self._call(tool.name, input, True, under, expected=tool)
        return cast(OutT, result)

    async def _call(
        self,
        name: str,
        arguments: object,
        typed: bool,
        under: Delegation | None,
        *,
        expected: Tool[Any, Any] | None = None,
    ) -> msgspec.Struct:
        access = self._access
        started_at = time.time()
        start = time.monotonic()
        call_id = new_id()
        held: _Held | None = None
        input: msgspec.Struct | None = None
        invocation: Invocation | None = None
        ran = False
        span = current_span.get()
        trace_id = None if span is None else format_id(span.trace_id)
        try:
            tool = access.registry.get(name)
            if tool is None or (expected is not None and tool is not expected):
                raise UnknownTool(name, self.name, self.granted())
            held = self._resolve(name, under)
            grant = held.grant
            now = access.clock()
            if grant.expires_at is not None and now >= grant.expires_at:
                raise GrantExpired(name, self.name, grant.expires_at, now)
            if typed:
                if not isinstance(arguments, tool.Input):
                    raise ToolInputError(
                        name,
                        f"Expected `{tool.Input.__qualname__}`, got `{type(arguments).__name__}`",
                        "$",
                    )
                input = tool._gr_decoder.check(arguments)  # encodable, before any charge
            else:
                input = tool.decode(arguments)
            disallowed = grant.first_disallowed(input)
            if disallowed is not None:
                field, value = disallowed
                raise ArgumentNotAllowed(name, self.name, field, value, grant.narrow[field])
            access.charge_call(self.name, name, held.grant, held.delegation)
            ran = True
            invocation = self._invocation(call_id, tool, held, input, trace_id)
            output = await self._checked(tool, invocation)
        except GreenroomError as exc:
            self._record(call_id, name, held, input, None, exc, started_at, start, ran, invocation)
            raise
        except Exception as exc:
            failed = ToolFailed(name, type(exc).__qualname__, str(exc))
            self._record(
                call_id, name, held, input, None, failed, started_at, start, ran, invocation
            )
            raise failed from exc
        self._record(call_id, name, held, input, output, None, started_at, start, ran, invocation)
        return output

    async def _checked(self, tool: Tool[Any, Any], invocation: Invocation) -> msgspec.Struct:
        output: msgspec.Struct = await self._run(tool, invocation)
        expected_type: type = tool.Output
        if not isinstance(output, expected_type):
            raise ToolOutputError(tool.name, tool.Output.__qualname__, type(output).__qualname__)
        return output

    def _resolve(self, name: str, under: Delegation | None) -> _Held:
        if under is not None:
            return self._delegated(name, under.id)
        grant = self._grants.get(name)
        if grant is not None:
            return _Held(grant, None)
        for delegation, tool in reversed(self._accepted.items()):
            if tool == name:
                return self._delegated(name, delegation)
        raise ToolNotGranted(name, self.name, self.granted())

    def _delegated(self, name: str, delegation: int) -> _Held:
        record = self._access.live(delegation)
        if record is None or record.box is not self:
            raise GrantRevoked(name, self.name, delegation, "this actor instance does not hold it")
        grant = record.delegation.grant
        if grant.tool != name:
            raise ToolNotGranted(name, self.name, self.granted())
        return _Held(grant, delegation)

    def _invocation(
        self,
        call_id: int,
        tool: Tool[Any, Any],
        held: _Held,
        input: msgspec.Struct,
        trace_id: str | None,
    ) -> Invocation:
        envelope = self._ctx.envelope
        # Steps count per delivery, and are keyed by the request it serves
        # (its causation): a re-forwarded request names the same steps.
        # (By identity: the re-sends of one idempotency key share an id.)
        if envelope is not self._message:
            self._message = envelope
            self._step = 0
        message_id = None if envelope is None else envelope.causation
        step = self._step
        self._step += 1
        return Invocation(
            call_id=call_id,
            tool=tool.name,
            effect=tool.effect,
            actor=self.name,
            grant=held.grant,
            delegation=held.delegation,
            input=input,
            input_hash=hashlib.sha256(_ENCODE(input)).hexdigest(),
            message_id=message_id,
            attempt=1 if envelope is None else envelope.attempt,
            step=step,
            trace_id=trace_id,
            output_type=tool.Output,
            requires_approval=tool.requires_approval or held.grant.requires_approval,
        )

    async def _run(self, tool: Tool[Any, Any], invocation: Invocation) -> msgspec.Struct:
        # The one place a tool runs: the approval gate first, then the interceptors.
        if invocation.requires_approval and invocation.ticket is None:
            gate = self._access.approvals
            if gate is None:
                raise ToolRefused(
                    tool.name,
                    self.name,
                    "its grant requires approval and no approval gate is configured",
                    "pass ToolAccess(approvals=ApprovalGate(store))",
                )
            return await gate.park(self, invocation)

        async def innermost() -> msgspec.Struct:
            result: msgspec.Struct = await tool.call(invocation.input)
            return result  # checked against tool.Output by the caller

        proceed: Proceed = innermost
        for interceptor in reversed(self._access.interceptors):
            proceed = _wrap(interceptor.intercept, invocation, proceed)
        return await proceed()

    def _record(
        self,
        call_id: int,
        name: str,
        held: _Held | None,
        input: msgspec.Struct | None,
        output: msgspec.Struct | None,
        error: GreenroomError | None,
        started_at: float,
        start: float,
        ran: bool,
        invocation: Invocation | None,
    ) -> None:
        if error is None:
            logger.bind(actor=self.name, tool=name, call_id=call_id, event="tools.call").debug(
                "{actor} called {tool}", actor=self.name, tool=name
            )
        else:
            log_failure(self.name, name, error)
        sink = self._access.on_call
        if sink is None and current_tracer.get() is None:
            return
        span = current_span.get()
        ticket = invocation.ticket if invocation is not None else None
        record = ToolCall(
            call_id=call_id,
            tool=name,
            actor=self.name,
            grant=None if held is None else held.grant,
            delegation=None if held is None else held.delegation,
            input=input,
            output=output,
            error=None if error is None else ErrorInfo.from_exception(error, with_traceback=False),
            started_at=started_at,
            duration=time.monotonic() - start,
            ran=ran,
            trace_id=None if span is None else format_id(span.trace_id),
            message_id=None if invocation is None else invocation.message_id,
            step=None if invocation is None else invocation.step,
            ticket=ticket or getattr(error, "ticket", None),
        )
        trace_call(record)
        if sink is not None:
            emit(sink, record)

    # -- approvals ---------------------------------------------------------------

    async def resolve(self, msg: TicketMessage) -> msgspec.Struct:
        """Settle a parked call by ``msg`` (Approve, Deny or its Expire) and say how it ended.

        An ``Approve`` runs the call (once: the ticket remembers the message
        that approved it), as the step it was parked in, through the
        interceptors, and records it like any call. Pass every ``Approve``,
        ``Deny`` and ``Expire`` the actor receives.

        Returns:
            the tool's Output (also for a redelivery of the approving message).

        Raises:
            ApprovalDenied: ``msg`` is a Deny (or a redelivery of it).
            ApprovalExpired: the deadline passed (an Expire, or an Approve too late).
            TicketClosed: the ticket was settled by another message; nothing ran.
            UnknownTicket: this actor has no ticket of that id.
            UsageError: the access has no approval gate.
            ToolError, GreenroomError: as :meth:`call`, for the approved call.
        """
        return await self._gate().resolve(self, msg)

    async def settle(self, msg: TicketMessage) -> Settled:
        """:meth:`resolve`, with the outcome as a :class:`Settled` message instead of a raise.

        Raises only what is not an outcome of the ticket: ``UnknownTicket``,
        ``UsageError``, and failures that are not ToolErrors.
        """
        return await settled(self, msg)

    async def restore(self) -> list[Ticket]:
        """Re-arm the deadline timers of this actor's pending tickets; call it in ``on_start``.

        Timers do not survive a restart of the actor or the process; the
        tickets do. Returns the pending tickets.
        """
        return await self._gate().restore(self)

    def _gate(self) -> ApprovalGate:
        gate = self._access.approvals
        if gate is None:
            raise UsageError(
                "this ToolAccess has no approval gate; "
                "pass ToolAccess(approvals=ApprovalGate(store))"
            )
        return gate

    async def _resume(self, tool: Tool[Any, Any], invocation: Invocation) -> msgspec.Struct:
        """Run an approved call through the interceptors, recorded like :meth:`call`."""
        started_at, start = time.time(), time.monotonic()
        held = _Held(invocation.grant, invocation.delegation)
        args = (invocation.call_id, tool.name, held, invocation.input)
        try:
            output = await self._checked(tool, invocation)
        except GreenroomError as exc:
            self._record(*args, None, exc, started_at, start, True, invocation)
            raise
        except Exception as exc:
            failed = ToolFailed(tool.name, type(exc).__qualname__, str(exc))
            self._record(*args, None, failed, started_at, start, True, invocation)
            raise failed from exc
        self._record(*args, output, None, started_at, start, True, invocation)
        return output


def _wrap(
    intercept: Callable[[Invocation, Proceed], Awaitable[msgspec.Struct]],
    invocation: Invocation,
    inner: Proceed,
) -> Proceed:
    async def proceed() -> msgspec.Struct:
        return await intercept(invocation, inner)

    return proceed
