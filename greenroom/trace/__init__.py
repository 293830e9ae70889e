"""Trace context: ids and the current span, carried by every envelope."""

from greenroom.trace._ids import SpanCarrier, current_span, format_id, new_id

__all__ = ["SpanCarrier", "current_span", "format_id", "new_id"]
