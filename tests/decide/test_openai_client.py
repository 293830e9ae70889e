"""The OpenAI-compatible client against a real HTTP server on loopback: replies, tool calls,
usage, the request it sends, and every failure the server can play, as a typed error."""

from __future__ import annotations

import anyio
import pytest

from greenroom.decide import (
    CallTool,
    ChatMessage,
    Context,
    InvalidModelOutput,
    ModelConfig,
    ModelTimeout,
    ModelUnavailable,
    OpenAIClient,
    RateLimited,
    Reply,
    Usage,
)
from greenroom.testing import (
    ScriptedError,
    ScriptedModelServer,
    ScriptedReply,
    ScriptedToolCall,
    ScriptedUsage,
)

from .conftest import CONTEXT, TOOLS, Weather

pytestmark = pytest.mark.anyio

STREAMS = pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])


def client(server: ScriptedModelServer, *, stream: bool = False, **kw: object) -> OpenAIClient:
    config = ModelConfig(model="primary", base_url=server.base_url, stream=stream, timeout=5.0)
    return OpenAIClient(config, api_key="sk-test", **kw)  # type: ignore[arg-type]


@STREAMS
async def test_plain_reply_becomes_a_reply_decision(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.reply("It is sunny in Paris.", fragment=3)
    async with client(server, stream=stream) as c:
        result = await c.decide(CONTEXT)
    assert result.decisions == (Reply(text="It is sunny in Paris."),)
    assert result.model == "primary"
    assert result.finish_reason == "stop"
    assert result.final == Reply(text="It is sunny in Paris.")


@STREAMS
async def test_single_tool_call_becomes_call_tool_with_decoded_arguments(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.call_tools(ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}, id="c1"))
    async with client(server, stream=stream, argument_types={"get_weather": Weather}) as c:
        result = await c.decide(CONTEXT)
    assert result.decisions == (CallTool(name="get_weather", arguments={"city": "Paris"}, id="c1"),)
    assert result.final is None
    assert result.finish_reason == "tool_calls"


@STREAMS
@pytest.mark.parametrize("interleave", [False, True], ids=["in-order", "interleaved"])
async def test_parallel_tool_calls_keep_their_order_and_arguments(
    server: ScriptedModelServer, stream: bool, interleave: bool
) -> None:
    calls = (
        ScriptedToolCall(name="get_weather", arguments={"city": "Paris", "days": 3}),
        ScriptedToolCall(name="get_time", arguments={"zone": "Europe/Paris"}),
        ScriptedToolCall(name="get_weather", arguments={"city": "Rome"}),
    )
    server.push(ScriptedReply(tool_calls=calls, fragment=2, interleave=interleave))
    async with client(server, stream=stream) as c:
        result = await c.decide(CONTEXT)
    assert [(c.name, c.arguments, c.id) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 3}, "call_0"),
        ("get_time", {"zone": "Europe/Paris"}, "call_1"),
        ("get_weather", {"city": "Rome"}, "call_2"),
    ]


async def test_streamed_arguments_split_into_one_character_fragments_reassemble(
    server: ScriptedModelServer,
) -> None:
    args = {"city": "São Paulo", "days": 2}
    server.push(
        ScriptedReply(
            tool_calls=(ScriptedToolCall(name="get_weather", arguments=args),), fragment=1
        )
    )
    async with client(server, stream=True, argument_types={"get_weather": Weather}) as c:
        result = await c.decide(CONTEXT)
    assert result.tool_calls[0].arguments == args


async def test_empty_argument_string_means_no_arguments(server: ScriptedModelServer) -> None:
    server.call_tools(ScriptedToolCall(name="get_time", arguments=""))
    async with client(server) as c:
        result = await c.decide(CONTEXT)
    assert result.tool_calls[0].arguments == {}


@STREAMS
async def test_usage_is_recorded_on_the_result(server: ScriptedModelServer, stream: bool) -> None:
    server.push(
        ScriptedReply(content="ok", usage=ScriptedUsage(prompt_tokens=120, completion_tokens=7))
    )
    async with client(server, stream=stream) as c:
        result = await c.decide(CONTEXT)
    assert result.usage == Usage(prompt_tokens=120, completion_tokens=7, total_tokens=127)


@STREAMS
async def test_usage_not_reported_is_none_not_zero(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.push(ScriptedReply(content="ok", usage=None))
    async with client(server, stream=stream) as c:
        result = await c.decide(CONTEXT)
    assert result.usage is None


async def test_stream_without_usage_option_still_answers(server: ScriptedModelServer) -> None:
    server.reply("ok")
    config = ModelConfig(model="m", base_url=server.base_url, stream=True, stream_usage=False)
    async with OpenAIClient(config) as c:
        result = await c.decide(CONTEXT)
    assert result.usage is None  # the server sends usage only when asked, as OpenAI does
    assert "stream_options" not in server.requests[0].json()  # type: ignore[operator]


@STREAMS
async def test_request_carries_model_messages_tools_facts_and_key(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.reply("done")
    call = CallTool(name="get_weather", arguments={"city": "Paris"}, id="c1")
    context = Context(
        messages=(
            ChatMessage.system("You are terse."),
            ChatMessage.user("weather?"),
            ChatMessage.assistant(calls=[call]),
            ChatMessage.tool_result(call, '{"sky": "clear"}'),
        ),
        facts={"user": "ada", "city": "Paris"},
        tools=TOOLS,
    )
    async with client(server, stream=stream) as c:
        await c.decide(context)
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-test"
    body = request.json()
    assert isinstance(body, dict)
    assert body["model"] == "primary"
    assert body["tools"] == list(TOOLS)
    assert body["messages"] == [
        {"role": "system", "content": "You are terse."},
        {"role": "system", "content": 'Known facts (JSON): {"city":"Paris","user":"ada"}'},
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": '{"sky": "clear"}', "tool_call_id": "c1"},
    ]
    if stream:
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
    else:
        assert "stream" not in body


async def test_key_comes_from_the_environment_when_not_passed(
    server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_MODEL_KEY", "sk-from-env")
    server.reply("ok")
    config = ModelConfig(model="m", base_url=server.base_url, api_key_env="MY_MODEL_KEY")
    async with OpenAIClient(config) as c:
        await c.decide(CONTEXT)
    assert server.requests[0].headers["authorization"] == "Bearer sk-from-env"


async def test_no_key_anywhere_sends_no_authorization_header(
    server: ScriptedModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.reply("ok")
    async with OpenAIClient(ModelConfig(model="m", base_url=server.base_url)) as c:
        await c.decide(CONTEXT)
    assert "authorization" not in server.requests[0].headers


async def test_one_client_reuses_its_connection_across_requests(
    server: ScriptedModelServer,
) -> None:
    server.reply("one")
    server.reply("two")
    async with client(server) as c:
        first = await c.decide(CONTEXT)
        second = await c.decide(CONTEXT)
    assert [first.final, second.final] == [Reply(text="one"), Reply(text="two")]
    assert server.unscripted == 0


# --- failures the server plays, each a typed error ---------------------------------------------


@STREAMS
async def test_server_error_is_model_unavailable_with_status(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.push(ScriptedError(status=500, message="the GPU caught fire"))
    async with client(server, stream=stream) as c:
        with pytest.raises(ModelUnavailable) as caught:
            await c.decide(CONTEXT)
    assert caught.value.status == 500
    assert "the GPU caught fire" in str(caught.value)
    assert caught.value.model == "primary"


@STREAMS
async def test_rate_limit_is_rate_limited_with_retry_after(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.fail(429, retry_after=7)
    async with client(server, stream=stream) as c:
        with pytest.raises(RateLimited) as caught:
            await c.decide(CONTEXT)
    assert caught.value.retry_after == 7.0


async def test_rate_limit_honours_retry_after_ms_and_http_dates(
    server: ScriptedModelServer,
) -> None:
    server.push(ScriptedError(status=429, headers={"retry-after-ms": "250"}))
    server.push(ScriptedError(status=429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    server.push(ScriptedError(status=429))
    async with client(server) as c:
        waits = []
        for _ in range(3):
            with pytest.raises(RateLimited) as caught:
                await c.decide(CONTEXT)
            waits.append(caught.value.retry_after)
    assert waits == [0.25, 0.0, None]  # a date in the past means: now


@STREAMS
async def test_slow_reply_past_the_timeout_is_model_timeout(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.push(ScriptedReply(content="late", delay=0.5))
    config = ModelConfig(model="slow", base_url=server.base_url, stream=stream, timeout=0.05)
    async with OpenAIClient(config) as c:
        with pytest.raises(ModelTimeout) as caught:
            await c.decide(CONTEXT)
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.timeout == 0.05


async def test_slow_reply_within_the_timeout_is_answered(server: ScriptedModelServer) -> None:
    server.push(ScriptedReply(content="in time", delay=0.02))
    async with client(server) as c:
        result = await c.decide(CONTEXT)
    assert result.final == Reply(text="in time")


@STREAMS
async def test_malformed_json_is_invalid_model_output_with_the_raw_body(
    server: ScriptedModelServer, stream: bool
) -> None:
    server.malformed('{"choices": [oops')
    async with client(server, stream=stream) as c:
        with pytest.raises(InvalidModelOutput) as caught:
            await c.decide(CONTEXT)
    assert caught.value.raw == '{"choices": [oops'


@pytest.mark.parametrize("cut", [1, 3, 6])
async def test_truncated_stream_is_model_unavailable(server: ScriptedModelServer, cut: int) -> None:
    calls = (ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}),)
    server.push(ScriptedReply(tool_calls=calls, truncate_after=cut))
    async with client(server, stream=True) as c:
        with pytest.raises(ModelUnavailable) as caught:
            await c.decide(CONTEXT)
    assert caught.value.status is None


async def test_truncated_json_body_is_model_unavailable(server: ScriptedModelServer) -> None:
    server.push(ScriptedReply(content="a reply that will be cut", truncate_after=20))
    async with client(server) as c:
        with pytest.raises(ModelUnavailable) as caught:
            await c.decide(CONTEXT)
    assert isinstance(caught.value.__cause__, Exception)  # the httpx error, chained


async def test_unreachable_server_is_model_unavailable() -> None:
    async with ScriptedModelServer() as gone:
        url = gone.base_url
    async with OpenAIClient(ModelConfig(model="m", base_url=url, timeout=2.0)) as c:
        with pytest.raises(ModelUnavailable) as caught:
            await c.decide(CONTEXT)
    assert "ConnectError" in caught.value.reason


async def test_outer_cancellation_is_not_turned_into_a_model_error(
    server: ScriptedModelServer,
) -> None:
    server.push(ScriptedReply(content="late", delay=0.5))
    async with client(server) as c:
        with anyio.move_on_after(0.02) as scope:
            await c.decide(CONTEXT)
    assert scope.cancelled_caught
