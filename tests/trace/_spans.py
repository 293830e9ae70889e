"""Span fixtures shared by the trace tests: a small request with an LLM call, a tool and a crash."""

from __future__ import annotations

import time

from greenroom import ErrorInfo
from greenroom.trace import Span, Tracer, genai, new_id


class Ask:
    """Stands in for a message type: spans are named by a type's qualname."""


def request_spans(base: float | None = None) -> list[Span]:
    """A coordinator message with an LLM call, a tool call, a crash and a retry."""
    t = time.time() - 1.0 if base is None else base
    trace = new_id()
    root = Span(
        trace_id=trace,
        span_id=trace,
        kind="message",
        name="Ask",
        actor="coordinator",
        start=t,
        end=t + 0.5,
    )
    llm = Span(
        trace_id=trace,
        span_id=new_id(),
        parent_id=root.span_id,
        kind="llm",
        name="gpt-test",
        actor="worker",
        start=t + 0.01,
        end=t + 0.2,
        attributes={
            genai.OPERATION_NAME: "chat",
            genai.PROVIDER_NAME: "openai",
            genai.REQUEST_MODEL: "gpt-test",
            genai.RESPONSE_MODEL: "gpt-test-2025",
            genai.INPUT_TOKENS: 120,
            genai.OUTPUT_TOKENS: 30,
            genai.INPUT_MESSAGES: [
                {"role": "system", "content": "You are a weather helper."},
                {"role": "user", "content": "Weather in Oslo?"},
            ],
            genai.DECISION: {"type": "CallTool", "tool": "weather", "input": {"city": "Oslo"}},
        },
    )
    tool = Span(
        trace_id=trace,
        span_id=new_id(),
        parent_id=root.span_id,
        kind="tool",
        name="weather",
        actor="tools",
        start=t + 0.21,
        end=t + 0.3,
        attributes={
            genai.TOOL_NAME: "weather",
            genai.TOOL_CALL_ID: "call_1",
            "input": {"city": "Oslo"},
        },
    )
    crash = Span(
        trace_id=trace,
        span_id=new_id(),
        parent_id=root.span_id,
        kind="message",
        name="Store",
        actor="writer",
        start=t + 0.31,
        end=t + 0.32,
        status="error",
        error=ErrorInfo(type="ValueError", message="disk said no"),
    )
    retry = Span(
        trace_id=trace,
        span_id=new_id(),
        parent_id=crash.span_id,
        kind="supervisor",
        name="retry",
        actor="root",
        start=t + 0.33,
        end=t + 0.34,
        attributes={"attempt": 2},
    )
    return [root, llm, tool, crash, retry]


def record_all(tracer: Tracer, spans: list[Span]) -> None:
    for span in spans:
        tracer.add(span)
