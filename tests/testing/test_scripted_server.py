"""The scripted model server speaks the real chat-completions protocol over real HTTP: the
official `openai` package reads it, streamed and not; it records requests and plays failures."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from greenroom.testing import (
    ScriptedError,
    ScriptedModelServer,
    ScriptedReply,
    ScriptedToolCall,
    ScriptedUsage,
)

pytestmark = pytest.mark.anyio

TOOLS: list[dict[str, object]] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
]


@pytest.fixture
async def server() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer() as running:
        yield running


@pytest.fixture
async def reference(server: ScriptedModelServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-ref", max_retries=0)
    async with client:
        yield client


async def test_official_openai_client_reads_replies_tool_calls_and_usage(
    server: ScriptedModelServer, reference: openai.AsyncOpenAI
) -> None:
    server.reply("hello", usage=ScriptedUsage(prompt_tokens=3, completion_tokens=1))
    server.call_tools(
        ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}, id="c1"),
        ScriptedToolCall(name="get_weather", arguments={"city": "Rome"}, id="c2"),
    )
    plain = await reference.chat.completions.create(
        model="gpt-ref", messages=[{"role": "user", "content": "hi"}]
    )
    tools = await reference.chat.completions.create(
        model="gpt-ref",
        messages=[{"role": "user", "content": "weather"}],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert plain.model == "gpt-ref"
    assert plain.choices[0].message.content == "hello"
    assert plain.choices[0].finish_reason == "stop"
    assert plain.usage is not None
    assert plain.usage.total_tokens == 4
    calls = tools.choices[0].message.tool_calls or []
    assert [(c.id, c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("c1", "get_weather", '{"city":"Paris"}'),
        ("c2", "get_weather", '{"city":"Rome"}'),
    ]
    assert tools.choices[0].finish_reason == "tool_calls"


async def test_official_openai_client_reads_a_stream_with_fragments_and_usage_last(
    server: ScriptedModelServer, reference: openai.AsyncOpenAI
) -> None:
    calls = (
        ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}),
        ScriptedToolCall(name="get_weather", arguments={"city": "Rome"}),
    )
    server.push(ScriptedReply(content="Checking.", tool_calls=calls, fragment=3, interleave=True))
    stream = await reference.chat.completions.create(
        model="gpt-ref",
        messages=[{"role": "user", "content": "weather"}],
        tools=TOOLS,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    text: list[str] = []
    arguments: dict[int, str] = {}
    names: dict[int, str] = {}
    finish = None
    usage = None
    chunks = 0
    async for chunk in stream:
        chunks += 1
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            text.append(choice.delta.content or "")
            for call in choice.delta.tool_calls or []:
                if call.function and call.function.name:
                    names[call.index] = call.function.name
                if call.function and call.function.arguments:
                    arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    assert "".join(text) == "Checking."
    assert names == {0: "get_weather", 1: "get_weather"}
    assert arguments == {0: '{"city":"Paris"}', 1: '{"city":"Rome"}'}
    assert finish == "tool_calls"
    assert usage is not None
    assert usage.total_tokens == 15
    assert chunks > 10  # really split into fragments


async def test_official_openai_client_sees_scripted_errors_as_api_errors(
    server: ScriptedModelServer, reference: openai.AsyncOpenAI
) -> None:
    server.push(ScriptedError(status=429, message="slow down", retry_after=2))
    server.fail(500)
    with pytest.raises(openai.RateLimitError) as limited:
        await reference.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "2"
    assert "slow down" in str(limited.value)
    with pytest.raises(openai.InternalServerError):
        await reference.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )


async def test_server_records_bodies_and_headers_of_every_request(
    server: ScriptedModelServer, reference: openai.AsyncOpenAI
) -> None:
    server.reply("one")
    await reference.chat.completions.create(
        model="gpt-ref", messages=[{"role": "user", "content": "hi"}], temperature=0.5
    )
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-ref"
    assert request.json() == {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "gpt-ref",
        "temperature": 0.5,
    }


async def test_request_beyond_the_script_gets_a_500_and_is_counted(
    server: ScriptedModelServer,
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.base_url}/chat/completions", json={"model": "m"})
    assert response.status_code == 500
    assert "no scripted answer left" in response.json()["error"]["message"]
    assert server.unscripted == 1


async def test_unknown_route_is_404_and_models_are_listed(server: ScriptedModelServer) -> None:
    async with httpx.AsyncClient() as http:
        missing = await http.post(f"{server.base_url}/embeddings", json={})
        models = await http.get(f"{server.base_url}/models")
    assert missing.status_code == 404
    assert models.json()["data"][0]["id"] == "scripted"


async def _read_all(http: httpx.AsyncClient, url: str) -> list[str]:
    lines = []
    async with http.stream("POST", url, json={"model": "m", "stream": True}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines.extend([line async for line in response.aiter_lines()])
    return lines


async def test_truncated_stream_ends_the_connection_mid_body(server: ScriptedModelServer) -> None:
    server.push(ScriptedReply(content="never finished", truncate_after=2))
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await _read_all(http, f"{server.base_url}/chat/completions")


async def test_scripted_answers_are_used_in_order_and_pending_counts_down(
    server: ScriptedModelServer,
) -> None:
    server.reply("first")
    server.reply("second")
    assert server.pending == 2
    async with httpx.AsyncClient() as http:
        url = f"{server.base_url}/chat/completions"
        first = (await http.post(url, json={"model": "m"})).json()
        second = (await http.post(url, json={"model": "m"})).json()
    assert [
        first["choices"][0]["message"]["content"],
        second["choices"][0]["message"]["content"],
    ] == [
        "first",
        "second",
    ]
    assert server.pending == 0


async def test_base_url_outside_the_block_is_a_clear_error() -> None:
    server = ScriptedModelServer()
    with pytest.raises(RuntimeError, match="async with"):
        _ = server.base_url
