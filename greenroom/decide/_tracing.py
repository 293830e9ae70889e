"""Spans of the decision layer: every decision step, with what the decider saw and decided."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

import msgspec

from greenroom.decide._context import Context
from greenroom.decide._decision import DecisionResult
from greenroom.trace import Span, current_tracer, genai

__all__ = ["decision_span", "record_result", "record_event"]


@contextlib.contextmanager
def decision_span(
    name: str, model: str, provider: str, context: Context, request: Mapping[str, object] | None
) -> Iterator[Span | None]:
    """An ``llm`` span around one decision step, when the running actor is traced.

    The span holds the exact messages sent (``request["messages"]`` when
    given, else the context's) and the tools offered; the caller adds the
    answer with :func:`record_result`. A failure is recorded by the span.
    """
    tracer = current_tracer.get()
    if tracer is None:
        yield None
        return
    messages = (
        request.get("messages") if request is not None else msgspec.to_builtins(context.messages)
    )
    attributes: dict[str, object] = {
        genai.OPERATION_NAME: "chat",
        genai.PROVIDER_NAME: provider,
        genai.REQUEST_MODEL: model,
        genai.INPUT_MESSAGES: messages,
        "greenroom.tools": list(context.tool_names()),
        # the whole context, as plain data: what replay and eval decide from again
        "greenroom.context": msgspec.to_builtins(context),
    }
    with tracer.span("llm", name, attributes=attributes) as span:
        yield span


def record_result(span: Span | None, result: DecisionResult) -> None:
    """Put the decision, the model that answered and the tokens on ``span``."""
    if span is None:
        return
    attributes = span.attributes
    attributes[genai.RESPONSE_MODEL] = result.model
    attributes[genai.DECISION] = msgspec.to_builtins(result.decisions)
    if result.usage is not None:
        attributes[genai.INPUT_TOKENS] = result.usage.prompt_tokens
        attributes[genai.OUTPUT_TOKENS] = result.usage.completion_tokens
    if result.failures:
        attributes["greenroom.fallbacks"] = [
            {"model": f.model, "error": f.error.type} for f in result.failures
        ]


def record_event(kind: str, name: str, error: BaseException, **attributes: object) -> None:
    """An instant span (a budget overrun, a loop or stall fault) under the current span."""
    tracer = current_tracer.get()
    if tracer is None:
        return
    with contextlib.suppress(type(error)), tracer.span(kind, name, attributes=attributes):
        raise error
