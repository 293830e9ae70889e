"""Fixtures of the decision-layer tests: a scripted model server on loopback, and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from greenroom.decide import ChatMessage, Context
from greenroom.testing import ScriptedModelServer


class Weather(msgspec.Struct, frozen=True):
    """The arguments of the get_weather tool."""

    city: str
    days: int = 1


def tool(name: str) -> dict[str, object]:
    """An OpenAI function-tool definition taking any object."""
    return {
        "type": "function",
        "function": {"name": name, "description": f"the {name} tool", "parameters": {}},
    }


TOOLS = (tool("get_weather"), tool("get_time"))
CONTEXT = Context(messages=(ChatMessage.user("weather in Paris?"),), tools=TOOLS)


@pytest.fixture
async def server() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer() as running:
        yield running
