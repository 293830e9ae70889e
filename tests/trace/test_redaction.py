"""A planted secret never reaches anything written: the database, WAL, HTML, exporter, logs."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import msgspec
import pytest
from loguru import logger
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from greenroom.trace import (
    OtelExporter,
    Secret,
    SqliteTraceStore,
    current_span,
    is_secret_key,
    log_patcher,
    redact_value,
    render_html,
    render_tree,
)

pytestmark = pytest.mark.anyio

PLANTED = "sk-PLANTED-7f3a9c2e1d5b"


class Credentials(msgspec.Struct):
    user: str
    key: Secret


def _planted_attributes() -> dict[str, object]:
    return {
        "api_key": PLANTED,
        "apiKey": PLANTED,
        "x-api-key": PLANTED,
        "password": PLANTED,
        "accessToken": PLANTED,
        "client_secret": PLANTED,
        "Authorization": f"Bearer {PLANTED}",
        "request": {
            "url": "https://api.example.test/v1/chat",
            "headers": {"Authorization": f"Bearer {PLANTED}", "Cookie": f"sid={PLANTED}"},
            "header_pairs": [["Proxy-Authorization", PLANTED], ("Set-Cookie", PLANTED)],
        },
        "wrapped": Secret(PLANTED),
        "nested": [{"deep": [Secret(PLANTED), {"token": PLANTED}]}],
        "login": Credentials(user="ada", key=Secret(PLANTED)),
        "command": f"curl -H 'Authorization: Bearer {PLANTED}' https://x.test",
        "echoed": f"the server said: invalid key {PLANTED}",
        "gen_ai.usage.input_tokens": 12,
        "max_tokens": 256,
        "city": "Oslo",
    }


def _assert_clean(label: str, data: bytes) -> None:
    assert PLANTED.encode() not in data, f"the planted secret leaked into {label}"
    assert PLANTED[3:].encode() not in data, f"part of the planted secret leaked into {label}"


def _scan_files(folder: Path) -> list[str]:
    names = []
    for file in folder.iterdir():
        _assert_clean(file.name, file.read_bytes())
        names.append(file.name)
    return names


def test_secret_keys_are_recognised_and_token_counts_are_not() -> None:
    for key in (
        "api_key",
        "API-KEY",
        "apiKey",
        "Authorization",
        "set-cookie",
        "refresh_token",
        "accessToken",
        "db_password",
        "private_key",
        "client_secret",
    ):
        assert is_secret_key(key), key
    for key in ("gen_ai.usage.input_tokens", "max_tokens", "key", "author", "city", "tokenizer"):
        assert not is_secret_key(key), key


def test_redaction_keeps_ordinary_values() -> None:
    out = redact_value(_planted_attributes())
    assert isinstance(out, dict)
    assert out["city"] == "Oslo"
    assert out["gen_ai.usage.input_tokens"] == 12
    assert out["login"] == {"user": "ada", "key": "[redacted]"}
    assert str(Secret(PLANTED)) == repr(Secret(PLANTED)) == "Secret('***')"


async def test_a_planted_secret_is_in_no_byte_written(tmp_path: Path) -> None:
    memory = InMemorySpanExporter()
    exporter = OtelExporter(memory, batch=False)
    log = io.StringIO()
    logger.enable("greenroom")
    sink = logger.add(log, format="{message} | {extra}", level="DEBUG")
    logger.configure(patcher=log_patcher)
    path = tmp_path / "traces.db"
    try:
        async with SqliteTraceStore(path, exporters=[exporter]) as store:
            tracer = store.tracer
            with tracer.span("llm", "chat", attributes=_planted_attributes()):
                logger.bind(api_key=PLANTED, headers={"Authorization": PLANTED}).info(
                    "calling the model with {}", Secret(PLANTED)
                )
                logger.info(f"the key was {PLANTED}")
                with pytest.raises(RuntimeError), tracer.span("tool", f"call {PLANTED}"):
                    raise RuntimeError(f"upstream rejected key {PLANTED}")
            tracer.record(
                1,
                2,
                None,
                "message",
                "Work",
                "a",
                0.0,
                1.0,
                ValueError(f"Bearer {PLANTED}"),
                {"cookie": PLANTED},
            )
            await store.flush()
            # While open: the database and its write-ahead log.
            assert "traces.db-wal" in _scan_files(tmp_path)
            trace_id = (await store.recent_traces(1))[0].trace_id
            spans = await store.spans(trace_id)
        assert "traces.db" in _scan_files(tmp_path)
    finally:
        logger.remove(sink)
        logger.configure(patcher=lambda record: None)
        logger.disable("greenroom")
    assert len(spans) == 2
    _assert_clean("the HTML", render_html(spans).encode())
    _assert_clean("the tree", render_tree(spans, attributes=True).encode())
    exported = memory.get_finished_spans()
    assert len(exported) == 3
    _assert_clean("the exporter", "".join(s.to_json() for s in exported).encode())
    _assert_clean("the logs", log.getvalue().encode())
    assert "[redacted]" in log.getvalue()
    assert "calling the model" in log.getvalue()
    assert current_span.get() is None


async def test_the_log_patcher_adds_the_trace_and_span_ids(tmp_path: Path) -> None:
    from greenroom.trace import Tracer

    log = io.StringIO()
    sink = logger.add(log, format="{extra[trace_id]} {extra[span_id]} {message}")
    logger.configure(patcher=log_patcher)
    try:
        logger.info("outside")
        with Tracer().span("tool", "x") as span:
            await anyio.lowlevel.checkpoint()
            logger.info("inside")
    finally:
        logger.remove(sink)
        logger.configure(patcher=lambda record: None)
    outside, inside = log.getvalue().splitlines()
    assert outside == "  outside"
    assert inside == f"{span.trace_id:016x} {span.span_id:016x} inside"
