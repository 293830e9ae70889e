"""Representative Input types (nested, optional, enum, list, constrained) and tools over them."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import msgspec

from greenroom.tools import PURE, Tool, tool


class Priority(enum.Enum):
    LOW = "low"
    HIGH = "high"


class Address(msgspec.Struct, frozen=True, kw_only=True):
    """A postal address."""

    city: str
    postcode: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{5}$", description="Five digits.")]


class Flat(msgspec.Struct, frozen=True, kw_only=True):
    """Scalars only."""

    query: str
    limit: int
    exact: bool


class Nested(msgspec.Struct, frozen=True, kw_only=True):
    """A Struct in a Struct, once described on the field."""

    name: str
    home: Annotated[Address, msgspec.Meta(description="Where they live.")]
    work: Address


class Optional_(msgspec.Struct, frozen=True, kw_only=True):
    """Optional fields, with and without defaults."""

    title: str
    subtitle: str | None = None
    page: int | None


class Enums(msgspec.Struct, frozen=True, kw_only=True):
    """An Enum and a Literal."""

    priority: Priority
    mode: Literal["fast", "careful"] = "fast"


class Lists(msgspec.Struct, frozen=True, kw_only=True):
    """Lists of scalars and of Structs."""

    tags: list[str]
    stops: list[Address] = []


class Constrained(msgspec.Struct, frozen=True, kw_only=True):
    """Constraints through msgspec.Meta."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=20)]
    count: Annotated[int, msgspec.Meta(ge=1, le=10)]
    ratio: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.5
    codes: Annotated[list[int], msgspec.Meta(min_length=1, max_length=3)]


class Tree(msgspec.Struct, frozen=True, kw_only=True):
    """A recursive Input."""

    label: str
    children: list[Tree] = []


class Mapping_(msgspec.Struct, frozen=True, kw_only=True):
    """A mapping field: expressible only outside strict mode."""

    scores: dict[str, int]


class Done(msgspec.Struct, frozen=True):
    """A plain Output."""

    ok: bool = True


INPUTS: list[type[msgspec.Struct]] = [Flat, Nested, Optional_, Enums, Lists, Constrained, Tree]

EXAMPLES: list[msgspec.Struct] = [
    Flat(query="q", limit=3, exact=False),
    Nested(
        name="ada",
        home=Address(city="London", postcode="12345"),
        work=Address(city="Cambridge", postcode="54321"),
    ),
    Optional_(title="t", page=None),
    Optional_(title="t", subtitle="s", page=2),
    Enums(priority=Priority.HIGH, mode="careful"),
    Lists(tags=["a", "b"], stops=[Address(city="x", postcode="00000")]),
    Constrained(name="n", count=10, ratio=0.25, codes=[1, 2, 3]),
    Tree(label="root", children=[Tree(label="leaf")]),
]


def tool_over(input_type: type[msgspec.Struct], *, strict: bool = True) -> Tool[Any, Done]:
    """A pure tool whose Input is ``input_type``, checked when its class is made."""

    async def call(self: Tool[Any, Done], input: msgspec.Struct) -> Done:
        return Done()

    namespace = {
        "__doc__": "Accept the input and report done.",
        "name": f"take_{input_type.__name__.strip('_').lower()}",
        "effect": PURE,
        "strict": strict,
        "Input": input_type,
        "Output": Done,
        "call": call,
    }
    made: Tool[Any, Done] = type("Over", (Tool,), namespace)()
    return made


@tool(effect=PURE)
async def take_enums(input: Enums) -> Done:
    """Take an Enums input."""
    return Done()
