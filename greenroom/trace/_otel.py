"""An OpenTelemetry exporter for greenroom spans (the ``otel`` extra).

Maps each span to an OTel span with the same ids (trace, span, parent), times,
status and attributes, and the GenAI semantic conventions for model and tool
calls: an ``"llm"`` span becomes a CLIENT span named ``"chat {model}"`` with
``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.response.model`` and ``gen_ai.usage.*``; a ``"tool"`` span becomes
``"execute_tool {tool}"`` with ``gen_ai.tool.name`` and ``gen_ai.tool.call.id``.
Other spans keep their names, prefixed by their kind. Every span carries
``greenroom.span.kind`` and, where known, ``greenroom.actor``; nested
attribute values are sent as JSON text, as the conventions say for content.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

try:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SimpleSpanProcessor,
        SpanExporter,
    )
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
except ImportError as error:  # pragma: no cover - exercised by a test with the module hidden
    raise ImportError(
        "greenroom's OpenTelemetry exporter needs the `otel` extra: "
        "pip install 'greenroom[otel]' (opentelemetry-api and opentelemetry-sdk)"
    ) from error

from greenroom.trace import _genai as g
from greenroom.trace._redact import redact_span
from greenroom.trace._span import Span

__all__ = ["OtelExporter"]

_SCOPE = InstrumentationScope("greenroom")
_encode = msgspec.json.Encoder(enc_hook=str).encode
_Value = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]


class OtelExporter:
    """Sends greenroom spans to an OpenTelemetry SDK span exporter.

    Give it any ``opentelemetry.sdk.trace.export.SpanExporter`` (OTLP,
    console, in-memory). With ``batch=True`` (the default) spans go through
    a ``BatchSpanProcessor``, whose own thread does the exporting, so the
    trace store's flush task never waits on the network; ``batch=False``
    exports in the calling task (tests). Pass it to
    ``SqliteTraceStore(exporters=[...])``, which hands it redacted batches
    (each span is redacted again on its way out, so spans given directly
    are covered too); call :meth:`shutdown` when done.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        batch: bool = True,
        resource: Resource | None = None,
    ) -> None:
        self._processor: SpanProcessor = (
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
        self._resource = resource or Resource.create({"service.name": "greenroom"})

    def export(self, spans: Sequence[Span]) -> None:
        """Hand finished spans to the processor. Never blocks on the network with ``batch``."""
        on_end = self._processor.on_end
        for span in spans:
            on_end(self.to_otel(span))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export what the processor holds; ``False`` if it timed out."""
        return self._processor.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop the processor and its exporter."""
        self._processor.shutdown()

    def to_otel(self, span: Span) -> ReadableSpan:
        """``span`` as an OTel ``ReadableSpan`` (ids, times, status, GenAI attributes), redacted."""
        span = redact_span(span)
        trace_id = span.trace_id or 1
        context = SpanContext(
            trace_id=trace_id,
            span_id=span.span_id or 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        parent = (
            None
            if span.parent_id is None
            else SpanContext(
                trace_id=trace_id,
                span_id=span.parent_id,
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
        )
        attributes, name, kind = _convention(span)
        events: list[Event] = []
        status = Status(StatusCode.OK)
        if span.error is not None:
            status = Status(StatusCode.ERROR, f"{span.error.type}: {span.error.message}")
            attributes["error.type"] = span.error.type
            exception: dict[str, _Value] = {
                "exception.type": span.error.type,
                "exception.message": span.error.message,
            }
            if span.error.traceback:
                exception["exception.stacktrace"] = span.error.traceback
            events.append(Event("exception", exception, timestamp=_ns(span.end)))
        return ReadableSpan(
            name=name,
            context=context,
            parent=parent,
            resource=self._resource,
            attributes=attributes,
            events=events,
            kind=kind,
            status=status,
            start_time=_ns(span.start),
            end_time=_ns(span.end),
            instrumentation_scope=_SCOPE,
        )


def _convention(span: Span) -> tuple[dict[str, _Value], str, SpanKind]:
    attributes: dict[str, _Value] = {
        key: _value(value) for key, value in span.attributes.items() if value is not None
    }
    attributes["greenroom.span.kind"] = span.kind
    if span.actor is not None:
        attributes["greenroom.actor"] = span.actor
    if span.kind == "llm":
        operation = str(attributes.setdefault(g.OPERATION_NAME, "chat"))
        model = str(attributes.setdefault(g.REQUEST_MODEL, span.name))
        legacy = attributes.get("gen_ai.system")
        if legacy is not None:
            attributes.setdefault(g.PROVIDER_NAME, legacy)
        return attributes, f"{operation} {model}", SpanKind.CLIENT
    if span.kind == "tool":
        attributes[g.OPERATION_NAME] = "execute_tool"
        tool = str(attributes.setdefault(g.TOOL_NAME, span.name))
        return attributes, f"execute_tool {tool}", SpanKind.INTERNAL
    return attributes, f"{span.kind} {span.name}", SpanKind.INTERNAL


def _value(value: object) -> _Value:
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and value:
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and kinds <= {str, bool, int, float}:
            return list(value)
    return _encode(value).decode()


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
