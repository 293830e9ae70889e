"""Whatever a server sends, the client answers with a result or a ModelError, never another
exception: deep nesting anywhere, invalid UTF-8, absurd token counts, oversized bodies, cut
streams. Invalid output keeps the raw text received, bounded in size."""

from __future__ import annotations

import msgspec
import pytest

from greenroom.decide import (
    InvalidModelOutput,
    ModelConfig,
    ModelError,
    ModelUnavailable,
    OpenAIClient,
    RateLimited,
    Reply,
)
from greenroom.decide._errors import RAW_KEPT

from ._raw_server import RawServer, chunked, response
from .conftest import CONTEXT

pytestmark = pytest.mark.anyio

DEEP = 5000


def nested(depth: int = DEEP) -> bytes:
    return b"[" * depth + b"]" * depth


def completion(message: bytes, extra: bytes = b"", finish: bytes = b'"stop"') -> bytes:
    return (
        b'{"choices":[{"index":0,"message":'
        + message
        + b',"finish_reason":'
        + finish
        + b"}]"
        + extra
        + b"}"
    )


def call(arguments: bytes) -> bytes:
    return completion(
        b'{"tool_calls":[{"id":"c1","function":{"name":"get_weather","arguments":'
        + arguments
        + b"}}]}",
        finish=b'"tool_calls"',
    )


def chunk(delta: bytes, finish: bytes = b"null") -> bytes:
    return (
        b'data: {"choices":[{"index":0,"delta":'
        + delta
        + b',"finish_reason":'
        + finish
        + b"}]}\n\n"
    )


GOOD = completion(b'{"content":"fine"}')

# (case, raw answer, the error expected; None: the answer is valid)
CASES: list[tuple[str, bytes, type[ModelError] | None]] = [
    ("deep-arguments-string", response(body=call(b'"' + nested() + b'"')), InvalidModelOutput),
    ("deep-arguments-object", response(body=call(b'{"a":' + nested() + b"}")), InvalidModelOutput),
    (
        "arguments-129-deep",
        response(body=call(b'"{\\"a\\":' + nested(128) + b'}"')),
        InvalidModelOutput,
    ),
    (
        "arguments-128-deep-accepted",
        response(body=call(b'"{\\"a\\":' + nested(127) + b'}"')),
        None,
    ),
    ("deep-error-object", response(body=b'{"error":' + nested() + b"}"), InvalidModelOutput),
    (
        "deep-unknown-field",
        response(body=b'{"x":' + nested() + b',"choices":[]}'),
        InvalidModelOutput,
    ),
    ("deep-choices", response(body=b'{"choices":' + nested() + b"}"), InvalidModelOutput),
    ("deep-error-body-500", response(500, b'{"error":' + nested() + b"}"), ModelUnavailable),
    ("deep-error-body-429", response(429, b'{"error":' + nested() + b"}"), RateLimited),
    (
        "negative-tokens",
        response(body=completion(b'{"content":"hi"}', b',"usage":{"total_tokens":-1000}')),
        InvalidModelOutput,
    ),
    (
        "huge-tokens",
        response(
            body=completion(b'{"content":"hi"}', b',"usage":{"total_tokens":1' + b"0" * 40 + b"}")
        ),
        InvalidModelOutput,
    ),
    (
        "infinite-tokens",
        response(body=completion(b'{"content":"hi"}', b',"usage":{"prompt_tokens":1e999}')),
        InvalidModelOutput,
    ),
    ("nan-literal", response(body=completion(b'{"content":NaN}')), InvalidModelOutput),
    (
        "lone-surrogate-escape",
        response(body=completion(b'{"content":"\\ud800"}')),
        InvalidModelOutput,
    ),
    ("wrong-type-choices", response(body=b'{"choices":{"0":1}}'), InvalidModelOutput),
    ("short-body", response(body=GOOD, length=len(GOOD) + 10), ModelUnavailable),
    (
        "deep-stream-chunk",
        chunked([b'data: {"choices":' + nested() + b"}\n\n"]),
        InvalidModelOutput,
    ),
    (
        "deep-stream-arguments",
        chunked(
            [
                chunk(
                    b'{"tool_calls":[{"index":0,"id":"c","function":{"name":"get_weather",'
                    b'"arguments":{"a":' + nested() + b"}}}]}",
                    b'"tool_calls"',
                ),
                b"data: [DONE]\n\n",
            ]
        ),
        InvalidModelOutput,
    ),
    ("cut-stream", chunked([chunk(b'{"content":"par"}')], finish=False), ModelUnavailable),
    (
        "stream-without-finish",
        chunked([chunk(b'{"content":"x"}'), b"data: [DONE]\n\n"]),
        ModelUnavailable,
    ),
    (
        "garbage-gzip",
        response(body=b"\x1f\x8b\x08not gzip at all", headers={"Content-Encoding": "gzip"}),
        ModelUnavailable,
    ),
]


def client(server: RawServer, **config: object) -> OpenAIClient:
    settings = ModelConfig(model="m", base_url=server.base_url, timeout=5.0, **config)  # type: ignore[arg-type]
    return OpenAIClient(settings, api_key="sk-hostile")


@pytest.mark.parametrize(("case", "raw", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_a_hostile_answer_is_a_typed_model_error_and_the_next_is_served(
    case: str, raw: bytes, expected: type[ModelError] | None
) -> None:
    async with RawServer() as server, client(server) as c:
        server.answer(raw, response(body=GOOD))
        if expected is None:
            assert (await c.decide(CONTEXT)).tool_calls
        else:
            with pytest.raises(ModelError) as caught:
                await c.decide(CONTEXT)
            assert isinstance(caught.value, expected), caught.value
        result = await c.decide(CONTEXT)  # the client keeps serving
    assert result.final == Reply(text="fine")


async def test_invalid_output_keeps_the_raw_body_received() -> None:
    body = call(b'"' + nested() + b'"')
    deep_body = b'{"note":"' + b"x" * 10 + b'","x":' + nested() + b"}"
    async with RawServer() as server, client(server) as c:
        server.answer(response(body=deep_body), response(body=body))
        with pytest.raises(InvalidModelOutput) as whole:
            await c.decide(CONTEXT)
        with pytest.raises(InvalidModelOutput) as arguments:
            await c.decide(CONTEXT)
    assert whole.value.raw.startswith('{"note":"xxxxxxxxxx","x":[[[')
    assert whole.value.raw == deep_body.decode()
    assert whole.value.raw_length == len(deep_body)
    assert arguments.value.raw == nested().decode()
    assert arguments.value.path.endswith("tool_calls[0].function.arguments")
    assert "nested at most 128" in arguments.value.reason


async def test_invalid_utf8_is_read_as_replacement_characters() -> None:
    async with RawServer() as server, client(server) as c:
        server.answer(response(body=completion(b'{"content":"caf\xc3\x28 \xff"}')))
        result = await c.decide(CONTEXT)
    assert result.final == Reply(text="caf\ufffd( \ufffd")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_an_answer_past_max_response_bytes_is_refused_and_its_raw_bounded(
    stream: bool,
) -> None:
    big = b"x" * (3 * RAW_KEPT)
    if stream:
        raw = chunked([chunk(b'{"content":"' + big + b'"}')] * 4)
    else:
        raw = response(body=completion(b'{"content":"' + big * 4 + b'"}'))
    async with RawServer() as server, client(server, max_response_bytes=8 * RAW_KEPT) as c:
        server.answer(raw)
        with pytest.raises(InvalidModelOutput) as caught:
            await c.decide(CONTEXT)
    error = caught.value
    assert "max_response_bytes" in error.reason
    assert len(error.raw) == RAW_KEPT < error.raw_length
    assert error.raw_length > 8 * RAW_KEPT


async def test_a_key_cut_at_the_end_of_a_kept_raw_is_not_shown_in_part() -> None:
    body = completion(b'{"content":"' + b"x" * 100 + b'sk-hostile"}')
    cut = body.index(b"sk-hostile") + 5  # the limit falls inside the key
    async with RawServer() as server, client(server, max_response_bytes=cut) as c:
        server.answer(response(body=body))
        with pytest.raises(InvalidModelOutput) as caught:
            await c.decide(CONTEXT)
    assert "sk-" not in caught.value.raw
    assert caught.value.raw.endswith("x")


async def test_a_sse_stream_split_anywhere_and_ended_by_cr_is_assembled() -> None:
    events = (
        chunk(b'{"content":"he"}').replace(b"\n", b"\r")
        + chunk(b'{"content":"llo"}').replace(b"\n", b"\r\n")
        + chunk(b"{}", b'"stop"')
        + b"data: [DONE]\n\n"
    )
    pieces = [events[i : i + 7] for i in range(0, len(events), 7)]
    async with RawServer() as server, client(server) as c:
        server.answer(chunked(pieces))
        result = await c.decide(CONTEXT)
    assert result.final == Reply(text="hello")


def test_a_deep_error_field_is_still_reported_by_type() -> None:
    # The 429 body is deep: the RateLimited keeps its type and no RecursionError escapes.
    text = msgspec.json.encode({"error": {"message": "slow down"}}).decode()
    from greenroom.decide._openai import _error_message

    assert _error_message(text) == "slow down"
    assert _error_message('{"error":' + nested().decode() + "}").startswith('{"error":[[[')
