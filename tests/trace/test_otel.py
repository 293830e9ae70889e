"""The OpenTelemetry exporter: same ids and times, GenAI attribute names."""

from __future__ import annotations

import builtins
import importlib
import sys
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from greenroom.trace import OtelExporter

from ._spans import request_spans


def _export() -> tuple[list[Any], list[Any]]:
    memory = InMemorySpanExporter()
    exporter = OtelExporter(memory, batch=False)
    spans = request_spans()
    exporter.export(spans)
    exporter.shutdown()
    return spans, list(memory.get_finished_spans())


def test_llm_spans_use_the_genai_inference_conventions() -> None:
    _spans, exported = _export()
    llm = next(s for s in exported if s.attributes["greenroom.span.kind"] == "llm")
    assert llm.name == "chat gpt-test"
    assert llm.kind is SpanKind.CLIENT
    attrs = llm.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-test"
    assert attrs["gen_ai.response.model"] == "gpt-test-2025"
    assert attrs["gen_ai.usage.input_tokens"] == 120
    assert attrs["gen_ai.usage.output_tokens"] == 30
    assert '"role":"user"' in attrs["gen_ai.input.messages"]  # content as JSON text
    assert not any(key.startswith("gen_ai.system") for key in attrs)  # deprecated name


def test_tool_spans_use_the_genai_execute_tool_conventions() -> None:
    _, exported = _export()
    tool = next(s for s in exported if s.attributes["greenroom.span.kind"] == "tool")
    assert tool.name == "execute_tool weather"
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "weather"
    assert tool.attributes["gen_ai.tool.call.id"] == "call_1"


def test_ids_parents_times_and_errors_are_kept() -> None:
    spans, exported = _export()
    by_id = {s.context.span_id: s for s in exported}
    for span in spans:
        otel = by_id[span.span_id]
        assert otel.context.trace_id == span.trace_id
        assert (otel.parent.span_id if otel.parent else None) == span.parent_id
        assert otel.start_time == round(span.start * 1e9)
        assert otel.end_time == round(span.end * 1e9)
    failed = by_id[spans[3].span_id]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes["error.type"] == "ValueError"
    assert failed.events[0].name == "exception"


def test_without_the_extra_the_import_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_otel(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("opentelemetry"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_otel)
    monkeypatch.delitem(sys.modules, "greenroom.trace._otel", raising=False)
    with pytest.raises(ImportError, match=r"greenroom\[otel\]"):
        importlib.import_module("greenroom.trace._otel")
