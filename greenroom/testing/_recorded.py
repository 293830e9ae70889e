"""A recorded trace as data: its decision steps and tool calls, and how values compare.

A *decision step* is one ``decide()`` call: one ``llm`` span, or a run of
``llm`` spans of one actor under one parent with the same context, each
failed but the last and each with another model (a router's fallbacks). A
*tool call* is one ``tool`` span, except calls refused before they ran
(unknown, not granted, bad input, over budget, parked for approval).
Steps and calls are numbered from 1 in start order over the whole trace.

Values are compared as the trace store keeps them: plain JSON data
(tuples as lists), redacted (:func:`plain` makes a live value so).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from greenroom._errors import ErrorInfo, UsageError
from greenroom.decide import Failure
from greenroom.trace import Span, SqliteTraceStore, genai, redact_value

__all__ = [
    "CONTEXT",
    "RecordedStep",
    "RecordedToolCall",
    "decision_steps",
    "first_difference",
    "plain",
    "resolve_trace",
    "show",
    "tool_calls",
    "value_at",
]

CONTEXT = "greenroom.context"
"""The attribute of an ``llm`` span holding the whole :class:`Context` as plain data."""

_encode = msgspec.json.Encoder(enc_hook=str).encode
# Refusals happen before a ToolBox reaches its interceptors: the code meets them again itself.
_NOT_RUN = frozenset(
    f"greenroom.{n}"
    for n in [
        "UnknownTool",
        "ToolNotGranted",
        "GrantExpired",
        "GrantRevoked",
        "BudgetExhausted",
        "ArgumentNotAllowed",
        "ToolInputError",
        "ToolRefused",
        "ApprovalPending",
    ]
)


def plain(value: object) -> object:
    """``value`` as a trace store keeps it: redacted plain JSON data (tuples as lists)."""
    return msgspec.json.decode(_encode(redact_value(value)))


def show(value: object, limit: int = 80) -> str:
    """``value`` as short JSON text for messages and tables."""
    text = _encode(value).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def first_difference(expected: object, found: object, path: str = "$") -> str | None:
    """The JSON path of the first place ``found`` differs from ``expected``, or ``None``."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in [*expected, *(k for k in found if k not in expected)]:
            if key not in expected or key not in found:
                return f"{path}.{key}"
            inner = first_difference(expected[key], found[key], f"{path}.{key}")
            if inner is not None:
                return inner
        return None
    if isinstance(expected, list) and isinstance(found, list):
        for i, (e, f) in enumerate(zip(expected, found, strict=False)):
            inner = first_difference(e, f, f"{path}[{i}]")
            if inner is not None:
                return inner
        return None if len(expected) == len(found) else f"{path}[{min(len(expected), len(found))}]"
    same = expected == found and type(expected) is type(found)
    return None if same else path


def value_at(value: object, path: str) -> object:
    """The value at a path :func:`first_difference` returned; ``"(absent)"`` past the end."""
    for part in path.replace("[", ".[").split(".")[1:]:
        key: int | str = int(part[1:-1]) if part.startswith("[") else part
        try:
            value = value[key]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return "(absent)"
    return value


class RecordedStep(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded decision step (see the module docs for how spans group into steps).

    ``context`` is ``None`` when the span did not record one; ``decisions``
    is ``None`` when the step failed (``error`` says how); ``failures`` are
    the models that failed before ``model`` answered.
    """

    trace_id: int
    step: int
    span_id: int
    actor: str | None
    name: str
    model: str
    context: dict[str, object] | None
    decisions: list[object] | None
    error: ErrorInfo | None = None
    failures: tuple[Failure, ...] = ()
    input_tokens: int | None = None
    output_tokens: int | None = None


class RecordedToolCall(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded tool call that ran: its arguments and its output or error, as plain data."""

    trace_id: int
    step: int
    span_id: int
    actor: str | None
    tool: str
    arguments: object
    result: object
    error: ErrorInfo | None = None


def decision_steps(spans: Iterable[Span]) -> list[RecordedStep]:
    """The decision steps of one trace's spans, in order (steps numbered from 1)."""
    groups: list[list[Span]] = []
    open_by_actor: dict[str | None, list[Span]] = {}
    for span in sorted((s for s in spans if s.kind == "llm"), key=lambda s: (s.start, s.span_id)):
        group = open_by_actor.get(span.actor)
        last = group[-1] if group else None
        if (
            group is not None
            and last is not None
            and last.status == "error"
            and last.parent_id == span.parent_id
            and last.attributes.get(CONTEXT) == span.attributes.get(CONTEXT)
            and span.attributes.get(genai.REQUEST_MODEL)
            not in {s.attributes.get(genai.REQUEST_MODEL) for s in group}
        ):
            group.append(span)
            continue
        group = [span]
        groups.append(group)
        open_by_actor[span.actor] = group
    return [_step(i, group) for i, group in enumerate(groups, 1)]


def _step(number: int, group: list[Span]) -> RecordedStep:
    last = group[-1]
    attributes = last.attributes
    # Spans straight from a tracer (not read back from a store) may still hold tuples.
    context = plain(attributes.get(CONTEXT))
    decisions = plain(attributes.get(genai.DECISION))
    failed = last.status == "error" or not isinstance(decisions, list)
    tokens = [attributes.get(k) for k in (genai.INPUT_TOKENS, genai.OUTPUT_TOKENS)]
    return RecordedStep(
        trace_id=last.trace_id,
        step=number,
        span_id=last.span_id,
        actor=last.actor,
        name=last.name,
        model=str(attributes.get(genai.RESPONSE_MODEL) or attributes.get(genai.REQUEST_MODEL, "")),
        context=context if isinstance(context, dict) else None,
        decisions=None if failed else decisions,  # type: ignore[arg-type]
        error=(last.error or ErrorInfo(type="unknown", message="no decision")) if failed else None,
        failures=tuple(
            Failure(
                model=str(s.attributes.get(genai.REQUEST_MODEL, s.name)),
                error=s.error or ErrorInfo(type="unknown", message=""),
            )
            for s in group[:-1]
        ),
        input_tokens=tokens[0] if type(tokens[0]) is int else None,
        output_tokens=tokens[1] if type(tokens[1]) is int else None,
    )


def tool_calls(spans: Iterable[Span]) -> list[RecordedToolCall]:
    """The tool calls of one trace's spans that ran, in order (numbered from 1)."""
    ran = [
        s for s in sorted(spans, key=lambda s: (s.start, s.span_id)) if s.kind == "tool" and _ran(s)
    ]
    return [
        RecordedToolCall(
            trace_id=s.trace_id,
            step=i,
            span_id=s.span_id,
            actor=s.actor,
            tool=str(s.attributes.get(genai.TOOL_NAME, s.name)),
            arguments=plain(s.attributes.get(genai.TOOL_CALL_ARGUMENTS)),
            result=plain(s.attributes.get(genai.TOOL_CALL_RESULT)),
            error=s.error if s.status == "error" else None,
        )
        for i, s in enumerate(ran, 1)
    ]


def _ran(span: Span) -> bool:
    # A ToolBox records "greenroom.ran"; for other recorders, tell refusals by their type.
    ran = span.attributes.get("greenroom.ran")
    if isinstance(ran, bool):
        return ran
    return span.error is None or span.error.type not in _NOT_RUN


async def resolve_trace(store: SqliteTraceStore, trace: int | str) -> int:
    """The trace id ``trace`` names: an int, or 1 to 16 hex digits (a unique prefix).

    Raises:
        UsageError: no trace, or more than one, has that id or prefix.
        TraceStoreUnavailable: the read failed.
    """
    if isinstance(trace, int):
        return trace
    found = await store.find_trace(trace)
    if len(found) != 1:
        problem = "no trace" if not found else "more than one trace"
        raise UsageError(
            f"{problem} in {store!r} has the id {trace!r}; `greenroom trace ls` lists them"
        )
    return found[0]
