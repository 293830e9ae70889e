"""The decision layer fed by the tools layer: registry schemas out, validated arguments in."""

from __future__ import annotations

import msgspec
import pytest

from greenroom.decide import ChatMessage, Context, InvalidModelOutput, ModelConfig, OpenAIClient
from greenroom.testing import ScriptedModelServer, ScriptedToolCall
from greenroom.tools import PURE, ToolRegistry, tool


class LookupIn(msgspec.Struct, frozen=True):
    order_id: int


class LookupOut(msgspec.Struct, frozen=True):
    status: str


@tool(effect=PURE)
async def lookup_order(input: LookupIn) -> LookupOut:
    """Look an order up by its id."""
    return LookupOut(status="shipped")


REGISTRY = ToolRegistry([lookup_order])


def client(server: ScriptedModelServer) -> OpenAIClient:
    types = {name: tool.Input for name in REGISTRY.names() if (tool := REGISTRY.get(name))}
    config = ModelConfig(model="scripted", base_url=server.base_url, stream=False)
    return OpenAIClient(config, api_key="sk-test", argument_types=types)


def context() -> Context:
    tools = tuple(dict(d) for d in REGISTRY.definitions())
    return Context(messages=(ChatMessage.user("where is order 7?"),), tools=tools)


@pytest.mark.anyio
async def test_registry_schemas_are_sent_and_arguments_come_back_typed() -> None:
    async with ScriptedModelServer() as server, client(server) as model:
        server.call_tools(ScriptedToolCall(name="lookup_order", arguments={"order_id": 7}))
        result = await model.decide(context())
        sent = server.requests[0].json()
    assert sent["tools"][0]["function"]["name"] == "lookup_order"
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["order_id"]
    [call] = result.tool_calls
    assert call.name == "lookup_order"
    assert msgspec.convert(call.arguments, LookupIn) == LookupIn(order_id=7)


@pytest.mark.anyio
async def test_arguments_that_do_not_fit_the_tools_input_are_invalid_model_output() -> None:
    async with ScriptedModelServer() as server, client(server) as model:
        server.call_tools(ScriptedToolCall(name="lookup_order", arguments={"order_id": "seven"}))
        with pytest.raises(InvalidModelOutput) as info:
            await model.decide(context())
    assert "seven" in info.value.raw
