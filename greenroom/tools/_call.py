"""One tool call as data: the invocation before it runs, the record after, and the seam between.

Every call a :class:`ToolBox` makes goes through one path::

    resolve tool and grant ─▶ decode Input ─▶ check narrowing ─▶ spend budget
        ─▶ interceptors (outermost first) ─▶ tool.call(input) ─▶ check Output
        ─▶ ToolCall record (also for refusals and failures)

An :class:`Interceptor` sees the :class:`Invocation` (every fact a ledger or
an approval gate needs: tool, effect, grant, input and its hash, the message
being handled and the step within it) and decides whether and how to
``proceed``. This is where a side-effect ledger writes an intent and a
receipt, and where an approval gate parks a call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec

from greenroom._errors import ErrorInfo
from greenroom.tools._effect import Effect
from greenroom.tools._grant import Grant

__all__ = ["Interceptor", "Invocation", "Proceed", "ToolCall"]


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
        message_id: the id of the envelope being handled, ``None`` outside a handler.
        attempt: that envelope's delivery attempt (1 on first delivery).
        step: the index of this call among the tool calls made while handling
            that envelope (0 for the first), so a redelivered message names
            the same steps again.
        trace_id: the trace being worked for (16 hex digits), or ``None``.
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

    @property
    def ok(self) -> bool:
        """Whether the call returned its Output."""
        return self.error is None
