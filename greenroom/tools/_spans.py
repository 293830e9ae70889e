"""Tool calls as spans: what ran, under which grant, with what input and result."""

from __future__ import annotations

import msgspec

from greenroom.tools._call import ToolCall
from greenroom.trace import current_span, current_tracer, genai, new_id

__all__ = ["trace_call"]


def trace_call(record: ToolCall) -> None:
    """Record ``record`` as a span of the current trace, if the running actor is traced.

    A call parked for approval is an ``approval`` span; every other call,
    refused, failed or run, a ``tool`` span with the GenAI tool attributes,
    the grant it ran under and its ledger key.
    """
    tracer = current_tracer.get()
    if tracer is None:
        return
    parent = current_span.get()
    trace_id = new_id() if parent is None else parent.trace_id
    parked = record.error is not None and record.error.type.endswith("ApprovalPending")
    attributes: dict[str, object] = {
        genai.OPERATION_NAME: "execute_tool",
        genai.TOOL_NAME: record.tool,
        genai.TOOL_CALL_ID: f"{record.call_id:016x}",
        genai.TOOL_CALL_ARGUMENTS: msgspec.to_builtins(record.input),
        "greenroom.ran": record.ran,
        "greenroom.grant": msgspec.to_builtins(record.grant),
    }
    if record.output is not None:
        attributes[genai.TOOL_CALL_RESULT] = msgspec.to_builtins(record.output)
    if record.key is not None:
        attributes["greenroom.ledger_key"] = record.key
    if record.ticket is not None:
        attributes["greenroom.ticket"] = record.ticket
    tracer.record(
        trace_id,
        new_id(),
        None if parent is None else parent.span_id,
        "approval" if parked else "tool",
        record.tool,
        record.actor,
        record.started_at,
        record.started_at + record.duration,
        None if parked else record.error,
        attributes,
    )
