"""The span: one timed piece of work in a trace, as plain data."""

from __future__ import annotations

from typing import Final, Literal

import msgspec

from greenroom._errors import ErrorInfo

__all__ = ["KINDS", "Span", "SpanStatus"]

SpanStatus = Literal["ok", "error"]

KINDS: Final = frozenset(
    {
        "message",
        "supervisor",
        "llm",
        "tool",
        "store",
        "approval",
        "budget",
        "fault",
        "redo",
        "internal",
    }
)
"""The kinds greenroom itself records. A span may carry any other kind name too."""


class Span(msgspec.Struct, kw_only=True):
    """One timed piece of work in a trace.

    Attributes:
        trace_id: the trace (63-bit int; :func:`format_id` shows it as hex).
        span_id: this span, unique within the trace.
        parent_id: the span that caused this one, ``None`` for a trace's root.
        kind: what sort of work: ``"message"``, ``"supervisor"``, ``"llm"``,
            ``"tool"``, ``"store"``, ``"approval"``, ``"budget"``, ``"fault"``,
            ``"redo"`` (see :data:`KINDS`).
        name: what was done: the message type, the tool or model name, ...
        actor: the actor it ran in, ``None`` outside any actor.
        start: wall-clock seconds since the epoch when it began.
        end: wall-clock seconds since the epoch when it ended (``start`` while open).
        status: ``"error"`` when it failed (then ``error`` says how), else ``"ok"``.
        attributes: facts about it; LLM and tool spans use the OpenTelemetry
            GenAI names (``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ...).
        error: the failure, for a span whose status is ``"error"``.

    A span is mutable while its ``with tracer.span(...)`` block runs; once
    recorded, treat it as read-only.
    """

    trace_id: int
    span_id: int
    parent_id: int | None = None
    kind: str
    name: str
    actor: str | None = None
    start: float
    end: float
    status: SpanStatus = "ok"
    attributes: dict[str, object] = msgspec.field(default_factory=dict)
    error: ErrorInfo | None = None

    @property
    def duration(self) -> float:
        """``end - start`` in seconds, never negative."""
        return max(0.0, self.end - self.start)
