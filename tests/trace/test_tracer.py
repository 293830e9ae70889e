"""The tracer: O(1) recording into a bounded buffer, oldest dropped first and counted."""

from __future__ import annotations

import pytest

from greenroom import ErrorInfo, UsageError
from greenroom.trace import Tracer, current_span


class Ping:
    pass


def _record(tracer: Tracer, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        tracer.record(7, 100 + i, None, "message", Ping, "a", float(i), float(i) + 0.5)


def test_drain_returns_spans_in_recording_order_with_type_names() -> None:
    tracer = Tracer()
    _record(tracer, 3)
    spans = tracer.drain()
    assert [s.span_id for s in spans] == [100, 101, 102]
    assert {s.name for s in spans} == {"Ping"}
    assert spans[0].kind == "message"
    assert spans[0].actor == "a"
    assert spans[0].status == "ok"
    assert tracer.drain() == []
    assert tracer.statistics().drained == 3


def test_a_full_buffer_drops_the_oldest_and_counts_them() -> None:
    tracer = Tracer(capacity=10)
    _record(tracer, 25)
    stats = tracer.statistics()
    assert (stats.buffered, stats.dropped, stats.capacity) == (10, 15, 10)
    assert [s.span_id for s in tracer.drain()] == list(range(115, 125))


def test_record_never_raises_on_odd_input() -> None:
    tracer = Tracer(capacity=2)
    tracer.record(1, 2, None, "x", object, None, 0.0, 0.0, ValueError("boom"), {"k": object()})
    spans = tracer.drain()
    assert spans[0].status == "error"
    assert spans[0].error is not None
    assert spans[0].error.type == "ValueError"
    assert isinstance(spans[0].attributes["k"], str)


def test_a_span_block_is_the_current_span_and_parents_what_opens_inside() -> None:
    tracer = Tracer()
    assert current_span.get() is None
    with tracer.span("tool", "search", q="x") as outer:
        assert current_span.get() is outer
        with tracer.span("store", "read") as inner:
            inner.attributes["key"] = "k1"
    assert current_span.get() is None
    inner_span, outer_span = tracer.drain()
    assert inner_span.parent_id == outer.span_id
    assert inner_span.trace_id == outer.trace_id
    assert outer_span.parent_id is None
    assert outer_span.trace_id == outer.span_id
    assert outer_span.attributes == {"q": "x"}
    assert inner_span.attributes == {"key": "k1"}
    assert outer_span.end >= inner_span.end >= inner_span.start >= outer_span.start


def test_a_span_block_that_raises_records_the_error_and_lets_it_propagate() -> None:
    tracer = Tracer()
    with pytest.raises(KeyError), tracer.span("tool", "fetch"):
        raise KeyError("missing")
    (span,) = tracer.drain()
    assert span.status == "error"
    assert span.error is not None
    assert span.error.type == "KeyError"
    assert span.error.traceback is not None
    assert "missing" in span.error.traceback


def test_a_span_inside_a_handler_joins_the_envelopes_trace_and_actor() -> None:
    class Envelope:  # what the runtime sets as the current span while handling
        trace_id = 11
        span_id = 22
        recipient = "worker"

    tracer = Tracer()
    token = current_span.set(Envelope())
    try:
        with tracer.span("llm", "model"):
            pass
    finally:
        current_span.reset(token)
    (span,) = tracer.drain()
    assert (span.trace_id, span.parent_id, span.actor) == (11, 22, "worker")


def test_error_info_passes_through_unchanged() -> None:
    tracer = Tracer()
    info = ErrorInfo(type="greenroom.HandlerTimeout", message="too slow")
    tracer.record(1, 2, None, "message", "Work", "a", 0.0, 1.0, info)
    assert tracer.drain()[0].error == info


def test_bad_capacity_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="capacity"):
        Tracer(capacity=0)
