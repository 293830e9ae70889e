"""A planted secret never reaches anything written: the database, WAL, HTML, exporter, logs."""

from __future__ import annotations

import io
from pathlib import Path

import anyio
import msgspec
import pytest
from loguru import logger
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from greenroom import Actor, ErrorInfo, Message, Runtime, handler
from greenroom.trace import (
    OtelExporter,
    Secret,
    SqliteTraceStore,
    current_span,
    is_secret_key,
    log_patcher,
    redact_text,
    redact_value,
    register_secret,
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


def test_an_error_info_is_redacted_however_it_is_made() -> None:
    secret = Secret("sk-ERRORINFO-51c9d0")
    text = f"upstream said: bad key {secret.reveal()}"
    try:
        raise RuntimeError(text)
    except RuntimeError as error:
        built = ErrorInfo.from_exception(error)
    made = ErrorInfo(type="RuntimeError", message=text, traceback=text)
    decoded = msgspec.msgpack.decode(
        msgspec.msgpack.encode({"type": "RuntimeError", "message": text, "traceback": text}),
        type=ErrorInfo,
    )
    converted = msgspec.convert({"type": "x", "message": text}, ErrorInfo)
    for info in (built, made, decoded, converted):
        assert secret.reveal() not in msgspec.json.encode(info).decode()
        assert info.message == "upstream said: bad key [redacted]"
    assert built.traceback is not None
    assert "RuntimeError: upstream said: bad key [redacted]" in built.traceback


def test_prose_around_auth_words_is_kept_and_credentials_are_cut() -> None:
    for prose in (
        "an invalid token format",
        "missing bearer token",
        "the basic setup failed",
        "Token budget exhausted",
        "digest mismatch",
    ):
        assert redact_text(prose) == prose
    assert redact_text("Authorization: Bearer sk-9f8e7d") == "Authorization: Bearer [redacted]"
    assert redact_text("Basic YWRhOmh1bnRlcjI=") == "Basic [redacted]"
    assert redact_text("Token 0123456789abcdef") == "Token [redacted]"
    assert redact_text(redact_text("Bearer sk-9f8e7d")) == "Bearer [redacted]"


def test_a_registered_text_is_cut_and_short_texts_are_not_registered() -> None:
    planted = register_secret("pw-REGISTERED-33aa")
    assert redact_text(f"login with {planted}!") == "login with [redacted]!"
    register_secret("abc")  # too short: it would cut ordinary words
    assert redact_text("abcdef") == "abcdef"
    with pytest.raises(TypeError):
        register_secret(b"bytes")  # type: ignore[arg-type]


async def test_greenroom_records_are_redacted_with_no_patcher_installed() -> None:
    """greenroom's logger redacts by itself: message, extra, and an attached exception,
    which it formats without the local variables loguru's ``diagnose`` would show."""
    from greenroom.trace._logging import logger as greenroom_logger

    secret = Secret("sk-LOGGED-0b7e44c1")
    log = io.StringIO()
    logger.enable("greenroom")
    sink = logger.add(log, format="{message} | {extra} | {exception}", diagnose=True)
    try:
        revealed = secret.reveal()  # a local that diagnose would print
        try:
            raise ValueError(f"rejected {revealed}")
        except ValueError as error:
            greenroom_logger.bind(api_key=revealed, note=f"key {revealed}", n=3).opt(
                exception=error
            ).warning("calling with {} failed", revealed)
    finally:
        logger.remove(sink)
        logger.disable("greenroom")
    written = log.getvalue()
    assert secret.reveal() not in written
    assert "calling with [redacted] failed" in written
    assert "ValueError: rejected [redacted]" in written  # the traceback is kept, redacted
    assert "'n': 3" in written


class _Chatty(Actor):
    @handler
    async def work(self, msg: _Work) -> None:
        key = msg.key_name  # the handler logs through the logger greenroom gives it
        self.ctx.log.bind(token=_ACTOR_SECRET.reveal()).info(
            "using {} for {}", _ACTOR_SECRET.reveal(), key
        )


class _Work(Message):
    key_name: str


_ACTOR_SECRET = Secret("sk-ACTORLOG-77c1e0aa")


async def test_an_actors_logger_is_redacted() -> None:
    log = io.StringIO()
    sink = logger.add(log, format="{message} | {extra}")
    try:
        async with Runtime() as rt:
            ref = await rt.spawn(_Chatty, name="chatty")
            await ref.ask(_Work(key_name="billing"), timeout=5)
    finally:
        logger.remove(sink)
    written = log.getvalue()
    assert "using [redacted] for billing" in written
    assert _ACTOR_SECRET.reveal() not in written


GREENROOM = Path(__file__).resolve().parents[2] / "greenroom"


def test_every_greenroom_module_logs_through_the_redacting_logger() -> None:
    """No module takes loguru's own logger: it would write records unredacted."""
    import ast

    offenders = []
    for path in sorted(GREENROOM.rglob("*.py")):
        rel = path.relative_to(GREENROOM).as_posix()
        if rel in ("trace/_logging.py", "__init__.py"):  # the redacting logger; disable()
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=rel)):
            if isinstance(node, ast.ImportFrom) and node.module == "loguru":
                names = {a.name for a in node.names}
                if names - {"Record", "Logger", "Message"}:
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []
