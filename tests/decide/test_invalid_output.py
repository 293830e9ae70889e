"""Model output that does not validate is a typed InvalidModelOutput with the raw text, never
a guess; and a router moves to its fallback on it."""

from __future__ import annotations

import msgspec
import pytest

from greenroom.decide import (
    FallbackRouter,
    InvalidModelOutput,
    ModelConfig,
    OpenAIClient,
    Reply,
)
from greenroom.testing import (
    ScriptedModelServer,
    ScriptedReply,
    ScriptedToolCall,
    ScriptItem,
)

from .conftest import CONTEXT, Weather

pytestmark = pytest.mark.anyio


class Verdict(msgspec.Struct, frozen=True):
    """A structured final reply."""

    answer: str
    confidence: float


def _call(name: str, arguments: dict[str, object] | str) -> ScriptedReply:
    return ScriptedReply(tool_calls=(ScriptedToolCall(name=name, arguments=arguments),))


# (case id, scripted answer, raw text expected on the error, words expected in its reason)
CASES: list[tuple[str, ScriptItem, str, str]] = [
    (
        "bad-json-arguments",
        _call("get_weather", '{"city": "Par'),
        '{"city": "Par',
        "not valid JSON",
    ),
    ("arguments-not-an-object", _call("get_weather", '["Paris"]'), '["Paris"]', "JSON object"),
    (
        "unknown-tool",
        _call("launch_rockets", {"count": 3}),
        'launch_rockets({"count":3})',
        "unknown tool",
    ),
    (
        "arguments-do-not-fit",
        _call("get_weather", {"city": 42}),
        '{"city":42}',
        "do not fit Weather",
    ),
    ("missing-argument", _call("get_weather", {"days": 2}), '{"days":2}', "do not fit Weather"),
    (
        "reply-where-structured-required",
        ScriptedReply(content="I think yes."),
        "I think yes.",
        "Verdict",
    ),
    (
        "structured-reply-wrong-shape",
        ScriptedReply(content='{"answer": "yes"}'),
        '{"answer": "yes"}',
        "Verdict",
    ),
    (
        "cut-at-token-limit",
        ScriptedReply(content="The answer is", finish_reason="length"),
        "The answer is",
        "token limit",
    ),
    ("empty-reply", ScriptedReply(content=""), "", "neither"),
]


def _client(server: ScriptedModelServer, name: str, stream: bool) -> OpenAIClient:
    config = ModelConfig(model=name, base_url=server.base_url, stream=stream)
    return OpenAIClient(
        config, argument_types={"get_weather": Weather}, reply_type=Verdict, api_key="sk-x"
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("case", "item", "raw", "reason"), CASES, ids=[c[0] for c in CASES])
async def test_invalid_output_is_a_typed_error_with_the_raw_text(
    server: ScriptedModelServer, stream: bool, case: str, item: ScriptItem, raw: str, reason: str
) -> None:
    server.push(item)
    async with _client(server, "primary", stream) as c:
        with pytest.raises(InvalidModelOutput) as caught:
            await c.decide(CONTEXT)
    error = caught.value
    assert error.raw == raw
    assert reason in error.reason
    assert error.model == "primary"
    assert error.path.startswith("$")


@pytest.mark.parametrize(("case", "item", "raw", "reason"), CASES, ids=[c[0] for c in CASES])
async def test_router_falls_back_on_invalid_output(
    server: ScriptedModelServer, case: str, item: ScriptItem, raw: str, reason: str
) -> None:
    async with ScriptedModelServer() as backup:
        server.push(item)
        backup.reply('{"answer": "yes", "confidence": 0.9}')
        async with _client(server, "primary", False) as p, _client(backup, "backup", False) as b:
            result = await FallbackRouter([p, b]).decide(CONTEXT)
    assert result.model == "backup"
    assert result.final == Reply(
        text='{"answer": "yes", "confidence": 0.9}', value=Verdict("yes", 0.9)
    )
    (failure,) = result.failures
    assert (failure.model, failure.error.type) == ("primary", "greenroom.InvalidModelOutput")


async def test_structured_reply_that_fits_is_decoded_into_its_type(
    server: ScriptedModelServer,
) -> None:
    server.reply('{"answer": "no", "confidence": 0.25}')
    async with _client(server, "primary", False) as c:
        result = await c.decide(CONTEXT)
    reply = result.final
    assert isinstance(reply, Reply)
    assert reply.value == Verdict(answer="no", confidence=0.25)
    schema = server.requests[0].json()["response_format"]  # type: ignore[index]
    assert schema["json_schema"]["name"] == "Verdict"
    assert schema["json_schema"]["schema"]["required"] == ["answer", "confidence"]


async def test_tool_calls_win_over_text_sent_with_them(server: ScriptedModelServer) -> None:
    calls = (ScriptedToolCall(name="get_weather", arguments={"city": "Oslo"}),)
    server.push(ScriptedReply(content="Let me check.", tool_calls=calls))
    async with _client(server, "primary", True) as c:
        result = await c.decide(CONTEXT)
    assert [c.name for c in result.tool_calls] == ["get_weather"]
    assert result.raw is not None
    assert "Let me check." in result.raw


async def test_error_text_quotes_a_long_raw_output_shortened_but_keeps_it_whole(
    server: ScriptedModelServer,
) -> None:
    long = "x" * 5000
    server.push(ScriptedReply(content=long))
    async with _client(server, "primary", False) as c:
        with pytest.raises(InvalidModelOutput) as caught:
            await c.decide(CONTEXT)
    assert caught.value.raw == long
    assert len(str(caught.value)) < 1000
