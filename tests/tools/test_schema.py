"""Schemas derived from Input are accepted by the official openai package; arguments round-trip."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import msgspec
import openai
import pydantic
import pytest
from openai.lib._pydantic import _ensure_strict_json_schema
from openai.types.chat import ChatCompletionToolParam
from openai.types.responses import FunctionToolParam

from greenroom.tools import InvalidTool, Tool, ToolDefinition
from tests.tools._inputs import EXAMPLES, INPUTS, Done, Mapping_, take_enums, tool_over

pytestmark = pytest.mark.anyio

TOOLS = [tool_over(t) for t in INPUTS]
TOOL_BY_INPUT = {t.Input: t for t in TOOLS}
_CHAT_TOOL = pydantic.TypeAdapter(ChatCompletionToolParam)
_RESPONSES_TOOL = pydantic.TypeAdapter(FunctionToolParam)


def _objects(node: object) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_the_tools_entry_validates_as_an_openai_chat_tool_param(tool: Tool[Any, Any]) -> None:
    entry: ChatCompletionToolParam = tool.definition()  # also checked by mypy
    _CHAT_TOOL.validate_python(entry, strict=True)
    function = entry["function"]
    _RESPONSES_TOOL.validate_python({"type": "function", **function}, strict=True)


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_the_strict_schema_is_already_what_openai_makes_strict(tool: Tool[Any, Any]) -> None:
    # openai's own strict-mode normaliser changes nothing: every object closed,
    # every property required, no $ref with siblings, no null defaults.
    schema = tool.parameters
    normalised = _ensure_strict_json_schema(copy.deepcopy(schema), path=(), root=schema)
    assert normalised == schema


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: t.name)
def test_the_schema_is_a_closed_object_with_resolvable_refs(tool: Tool[Any, Any]) -> None:
    schema = tool.parameters
    assert schema["type"] == "object"
    assert "$ref" not in schema
    for obj in _objects(schema):
        assert obj["additionalProperties"] is False
        assert obj["required"] == list(obj["properties"])
    defs = schema.get("$defs", {})
    assert isinstance(defs, dict)
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in defs


def test_enums_say_their_type_and_constraints_stay_where_strict_supports_them() -> None:
    props = tool_over(INPUTS[5]).parameters["properties"]  # Constrained
    assert isinstance(props, dict)
    assert props["count"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert (props["codes"]["minItems"], props["codes"]["maxItems"]) == (1, 3)
    assert "minLength" not in props["name"]  # dropped in strict mode; Input still checks it
    enums = take_enums.parameters
    assert enums["$defs"]["Priority"]["type"] == "string"  # type: ignore[index]
    assert enums["properties"]["mode"] == {"enum": ["careful", "fast"], "type": "string"}  # type: ignore[index]


def test_a_non_strict_schema_keeps_defaults_constraints_and_optional_fields() -> None:
    loose = tool_over(INPUTS[5], strict=False)
    props = loose.parameters["properties"]
    assert isinstance(props, dict)
    assert props["name"]["minLength"] == 1
    assert props["ratio"]["default"] == 0.5
    assert loose.parameters["required"] == ["name", "count", "codes"]
    assert loose.definition()["function"]["strict"] is False


def test_a_mapping_cannot_be_strict_and_says_so() -> None:
    with pytest.raises(InvalidTool, match="strict = False"):
        tool_over(Mapping_)
    loose = tool_over(Mapping_, strict=False)
    assert loose.parameters["properties"]["scores"]["additionalProperties"] == {  # type: ignore[index]
        "type": "integer"
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_arguments_round_trip_into_input(example: msgspec.Struct) -> None:
    tool = TOOL_BY_INPUT[type(example)]
    text = msgspec.json.encode(example)
    assert tool.decode(text) == example
    assert tool.decode(text.decode()) == example
    assert tool.decode(json.loads(text)) == example


async def test_the_openai_client_sends_the_tools_unchanged_and_its_parsed_arguments_decode() -> (
    None
):
    sent: list[dict[str, Any]] = []
    calls = [
        {
            "id": f"call_{i}",
            "type": "function",
            "function": {
                "name": TOOL_BY_INPUT[type(example)].name,
                "arguments": msgspec.json.encode(example).decode(),
            },
        }
        for i, example in enumerate(EXAMPLES)
    ]

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        message = {"role": "assistant", "content": None, "tool_calls": calls}
        return httpx.Response(
            200,
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}],
            },
        )

    definitions: list[ToolDefinition] = [t.definition() for t in TOOLS]
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        client = openai.AsyncOpenAI(
            api_key="unused",
            base_url="http://127.0.0.1:9/v1",
            http_client=http,  # type: ignore[arg-type]  # openai's stubs name the httpx2 fork
            max_retries=0,
        )
        completion = await client.chat.completions.parse(
            model="m",
            messages=[{"role": "user", "content": "go"}],
            tools=definitions,  # openai validates: function tools, all strict
        )
    assert sent[0]["tools"] == json.loads(json.dumps(definitions))
    tool_calls = completion.choices[0].message.tool_calls or []
    by_name = {t.name: t for t in TOOLS}
    for call, example in zip(tool_calls, EXAMPLES, strict=True):
        tool = by_name[call.function.name]
        assert tool.decode(call.function.arguments) == example
        assert tool.decode(call.function.parsed_arguments) == example


def test_a_done_output_is_a_struct() -> None:
    assert issubclass(Done, msgspec.Struct)
