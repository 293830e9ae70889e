"""One tool call as data: the invocation before it runs, the record after, and the seam between.

Every call a :class:`ToolBox` makes goes through one path::

    resolve tool and grant ─▶ decode Input ─▶ check narrowing ─▶ spend budget
        ─▶ approval gate (parks the call if it needs approval; resumed by Approve)
        ─▶ interceptors (outermost first; a Ledger last) ─▶ tool.call(input)
        ─▶ check Output ─▶ ToolCall record (also for refusals, parking and failures)

An :class:`Interceptor` sees the :class:`Invocation` (every fact a ledger or
an approval gate needs: tool, effect, grant, input and its hash, the message
being handled and the step within it) and decides whether and how to
``proceed``. This is where a side-effect ledger writes an intent and a
receipt. (The approval gate sits before them, in the ToolBox: parking needs
the actor's timers.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from greenroom._errors import ErrorInfo, GreenroomError
from greenroom.tools._effect import Effect
from greenroom.tools._effect_errors import ApprovalPending
from greenroom.tools._errors import ToolInputError, ToolRefused
from greenroom.tools._grant import Grant
from greenroom.trace._logging import logger

__all__ = ["Interceptor", "Invocation", "Proceed", "ToolCall", "emit", "log_failure", "step_key"]


def step_key(actor: str, message_id: int | None, step: int, call_id: int) -> str:
    """The key of one step: ``actor/request/step``, the same on every redelivery.

    ``message_id`` is the request's causation id (``Envelope.causation``), so
    a request forwarded again under a new envelope (its forwarder was
    redelivered) names the same steps.

    A call made outside a handler (no message) has no step to repeat; its key
    is ``actor/call-<call_id>``. The side-effect ledger and the approval gate
    key their records by it, and a :class:`ToolCall` names it as ``key``.
    """
    if message_id is None:
        return f"{actor}/call-{call_id}"
    return f"{actor}/{message_id}/{step}"


class Invocation(msgspec.Struct, frozen=True, kw_only=True):
    """A granted, validated call about to run.

    Attributes:
        call_id: unique id of this call.
        tool: the tool's name.
        effect: the tool's declared effect.
        actor: the calling actor's name.
        grant: the grant the call runs under.
        delegation: the delegation id when the grant was delegated, else ``None``.
        input: the validated Input.
        input_hash: sha256 hex digest of the Input's JSON encoding.
        message_id: the request the call serves: the causation of the
            envelope being handled (``Envelope.causation``: its own id, or
            the original's when it was forwarded, or the id derived from
            its idempotency key), ``None`` outside a handler.
        attempt: that envelope's delivery attempt (1 on first delivery).
        step: the index of this call among the tool calls made while handling
            that envelope (0 for the first), so a redelivered message, or the
            same request forwarded again, names the same steps again.
        trace_id: the trace being worked for (16 hex digits), or ``None``.
        output_type: the tool's Output class (to decode a recorded receipt).
        requires_approval: whether the tool or the grant requires approval.
        ticket: the approval ticket this call resumes (``None`` for a fresh
            call); a resumed call names the message and step it was parked in.
    """

    call_id: int
    tool: str
    effect: Effect
    actor: str
    grant: Grant
    delegation: int | None
    input: msgspec.Struct
    input_hash: str
    message_id: int | None
    attempt: int
    step: int
    trace_id: str | None
    output_type: type[msgspec.Struct] = msgspec.Struct
    requires_approval: bool = False
    ticket: str | None = None

    @property
    def key(self) -> str:
        """The step's key (see :func:`step_key`): the ledger's and the approval gate's."""
        return step_key(self.actor, self.message_id, self.step, self.call_id)


Proceed = Callable[[], Awaitable[msgspec.Struct]]
"""Runs the rest of the chain (and finally the tool) once; returns its Output."""


class Interceptor(Protocol):
    """Wraps every granted, validated tool call of a :class:`ToolAccess`.

    ``intercept`` may call ``proceed`` once and return its result, return an
    Output without calling it (a recorded receipt), or raise (a refusal, a
    denial). What it returns is checked against the tool's Output type.
    """

    async def intercept(self, invocation: Invocation, proceed: Proceed) -> msgspec.Struct:
        """Run ``invocation`` (through ``proceed``) or answer it."""
        ...


class ToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """The record of one tool call, made or refused.

    Attributes:
        call_id: unique id of the call.
        tool: the name the call asked for.
        actor: the calling actor's name.
        grant: the grant it ran (or was refused) under; ``None`` when no
            grant applied (an unknown or ungranted tool).
        delegation: the delegation id when the grant was delegated.
        input: the validated Input, ``None`` when refused before validation.
        output: the Output, ``None`` on error.
        error: the error as data, ``None`` on success.
        started_at: wall-clock time the call began (seconds since the epoch).
        duration: seconds from the start of the call to its end (monotonic).
        ran: whether the call reached past the interceptors' entry (the
            budget was spent); ``False`` for every refusal and input error.
        trace_id: the trace it belongs to, or ``None``.
        message_id: the request the call was made for, as ``Invocation.message_id``
            (a resumed call: the request it was parked in), ``None`` outside a handler.
        step: its step within that message, ``None`` when it was refused
            before it got one.
        ticket: the approval ticket it was parked as or resumed from.
    """

    call_id: int
    tool: str
    actor: str
    grant: Grant | None
    delegation: int | None
    input: msgspec.Struct | None
    output: msgspec.Struct | None
    error: ErrorInfo | None
    started_at: float
    duration: float
    ran: bool
    trace_id: str | None
    message_id: int | None = None
    step: int | None = None
    ticket: str | None = None

    @property
    def key(self) -> str | None:
        """The step's key, under which the ledger keeps its intent and receipt.

        ``None`` when the call was refused before it got a step (nothing of
        it reached a ledger). ``await ledger.entry(record.key)`` reads it.
        """
        if self.step is None:
            return None
        return step_key(self.actor, self.message_id, self.step, self.call_id)

    @property
    def ok(self) -> bool:
        """Whether the call returned its Output."""
        return self.error is None


def emit(sink: Callable[[ToolCall], None], record: ToolCall) -> None:
    """Hand ``record`` to ``sink``; an exception it raises is logged, not propagated."""
    try:
        sink(record)
    except Exception as exc:
        logger.bind(actor=record.actor, tool=record.tool, event="tools.record_failed").opt(
            exception=exc
        ).warning("the on_call sink raised {!r}", exc)


def log_failure(actor: str, tool: str, error: GreenroomError) -> None:
    """Log a call that did not return its Output, at the level its kind deserves."""
    if isinstance(error, ApprovalPending):
        event, level = "tools.parked_call", "INFO"
    elif isinstance(error, ToolRefused):
        event, level = "tools.refused", "WARNING"
    elif isinstance(error, ToolInputError):
        event, level = "tools.input_error", "INFO"
    else:
        event, level = "tools.failed", "WARNING"
    logger.bind(actor=actor, tool=tool, event=event, error=type(error).__name__).log(
        level, "{}", error
    )
