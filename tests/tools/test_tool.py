"""Defining tools: both forms, effects as validated data, every mistake refused at definition."""

from __future__ import annotations

import types
from typing import Any

import msgspec
import pytest

from greenroom.tools import (
    IRREVERSIBLE,
    PURE,
    Compensable,
    Effect,
    Grant,
    Idempotent,
    InvalidGrant,
    InvalidTool,
    Tool,
    ToolRegistry,
    tool,
)
from tests.tools._inputs import Done, Flat


class Order(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    amount: int


class PlaceOrder(Tool[Order, Done]):
    """Place an order once per order id."""

    effect = Idempotent(key="order_id")

    async def call(self, input: Order) -> Done:
        return Done()


@tool(effect=PURE)
async def search(input: Flat) -> Done:
    """Search for things."""
    return Done()


@pytest.mark.anyio
async def test_a_function_tool_takes_name_description_and_types_from_the_function() -> None:
    assert (search.name, search.description) == ("search", "Search for things.")
    assert (search.Input, search.Output, search.effect) == (Flat, Done, PURE)
    assert await search.call(Flat(query="q", limit=1, exact=True)) == Done()


def test_a_subclass_takes_its_types_from_the_type_arguments_and_its_name_from_the_class() -> None:
    assert (PlaceOrder.name, PlaceOrder().Input, PlaceOrder().Output) == (
        "place_order",
        Order,
        Done,
    )
    assert PlaceOrder.description == "Place an order once per order id."


def _define(**attrs: Any) -> type:
    async def call(self: Any, input: Order) -> Done:
        return Done()

    namespace: dict[str, Any] = {"__doc__": "A tool.", "effect": PURE, "call": call}
    namespace.update(attrs)
    return types.new_class("Probe", (Tool[Order, Done],), exec_body=lambda ns: ns.update(namespace))


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ({"effect": None}, "declares no effect"),
        ({"effect": "pure"}, "declares no effect"),
        ({"__doc__": None}, "no description"),
        ({"name": "has space"}, "must match"),
        ({"name": "x" * 65}, "must match"),
        ({"effect": Idempotent(key="missing")}, "not a field of Order"),
        ({"Input": dict}, "Input must be a msgspec.Struct"),
        ({"Output": str}, "Output must be a msgspec.Struct"),
        ({"strict": "yes"}, "strict must be a bool"),
    ],
)
def test_a_tool_class_that_cannot_work_is_refused_when_defined(
    attrs: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidTool, match=words):
        _define(**attrs)


def test_a_bare_tool_decorator_is_refused_with_the_fix() -> None:
    with pytest.raises(InvalidTool, match=r"@tool\(effect=PURE\)"):

        @tool
        async def bare(input: Flat) -> Done:
            """Bare."""
            return Done()


def test_a_sync_function_is_refused() -> None:
    with pytest.raises(InvalidTool, match="async"):

        @tool(effect=PURE)  # type: ignore[arg-type]
        def sync(input: Flat) -> Done:
            """Sync."""
            return Done()


@pytest.mark.parametrize(
    "effect",
    [PURE, IRREVERSIBLE, Idempotent(key="k"), Compensable(undo="cancel")],
    ids=lambda e: type(e).__name__,
)
def test_effects_are_plain_data_that_round_trip(effect: Effect) -> None:
    data = msgspec.msgpack.encode(effect)
    assert msgspec.msgpack.decode(data, type=Effect) == effect


@pytest.mark.parametrize("bad", [lambda: Idempotent(key=""), lambda: Compensable(undo="")])
def test_an_effect_without_its_reference_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidTool):
        bad()


def test_a_compensable_tool_needs_its_undo_tool_registered() -> None:
    class Charge(Tool[Order, Done]):
        """Charge a card."""

        effect = Compensable(undo="refund")

        async def call(self, input: Order) -> Done:
            return Done()

    registry = ToolRegistry([Charge()])
    with pytest.raises(InvalidTool, match="'refund' is not registered"):
        registry.check()

    @tool(effect=IRREVERSIBLE, name="refund")
    async def refund(input: Order) -> Done:
        """Refund a charge."""
        return Done()

    registry.add(refund)
    registry.check()


def test_a_registry_refuses_two_tools_of_one_name_and_non_tools() -> None:
    registry = ToolRegistry([search])
    with pytest.raises(InvalidTool, match="registered already"):
        registry.add(search)
    with pytest.raises(InvalidTool, match="Tool instance"):
        registry.add(PlaceOrder)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("grant", "words"),
    [
        (Grant("nope"), "no tool of that name"),
        (Grant("place_order", narrow={"missing": ("x",)}), "not a field of Order"),
        (Grant("place_order", narrow={"amount": ("ten",)}), "never takes"),
    ],
)
def test_a_grant_that_does_not_fit_its_tool_is_refused(grant: Grant, words: str) -> None:
    with pytest.raises(InvalidGrant, match=words):
        ToolRegistry([PlaceOrder()]).check_grant(grant)
