"""Tracing: span ids and the current span, the recorder, the trace store and its views.

The lowest layer of greenroom: it imports only ``greenroom._errors`` and
``greenroom._secrets``.
``OtelExporter`` needs the ``otel`` extra and is imported on first use.
"""

import typing as _typing

from greenroom._errors import publish_errors as _publish_errors
from greenroom.trace import _genai as genai
from greenroom.trace._errors import TraceStoreUnavailable
from greenroom.trace._export import SpanExporter
from greenroom.trace._html import render_html
from greenroom.trace._ids import SpanCarrier, attempt_span_id, current_span, format_id, new_id
from greenroom.trace._logging import log_patcher
from greenroom.trace._redact import (
    REDACTED,
    Secret,
    is_secret_key,
    redact_text,
    redact_value,
    register_secret,
)
from greenroom.trace._span import KINDS, Span, SpanStatus
from greenroom.trace._store import SqliteTraceStore, TraceStoreStatistics, TraceSummary
from greenroom.trace._tracer import (
    MessageRow,
    SpanScope,
    Tracer,
    TracerStatistics,
    current_tracer,
)
from greenroom.trace._tree import render_tree

if _typing.TYPE_CHECKING:
    from greenroom.trace._otel import OtelExporter

__all__ = [
    "KINDS",
    "MessageRow",
    "REDACTED",
    "OtelExporter",
    "Secret",
    "Span",
    "SpanCarrier",
    "SpanExporter",
    "SpanScope",
    "SpanStatus",
    "SqliteTraceStore",
    "TraceStoreStatistics",
    "TraceStoreUnavailable",
    "TraceSummary",
    "Tracer",
    "TracerStatistics",
    "attempt_span_id",
    "current_span",
    "current_tracer",
    "format_id",
    "genai",
    "is_secret_key",
    "log_patcher",
    "new_id",
    "redact_text",
    "redact_value",
    "register_secret",
    "render_html",
    "render_tree",
]

_publish_errors(__name__, globals())


def __getattr__(name: str) -> object:
    # The exporter imports opentelemetry: only when asked for, so the extra stays optional.
    if name == "OtelExporter":
        from greenroom.trace._otel import OtelExporter

        return OtelExporter
    raise AttributeError(f"module 'greenroom.trace' has no attribute {name!r}")
