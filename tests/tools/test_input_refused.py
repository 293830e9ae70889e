"""Invalid tool input is refused before anything is spent: a lone surrogate, nesting past the
limit, a value that does not encode. The caller gets a ToolInputError it can read; the grant's
budget is untouched and the tool never runs."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import greenroom as gr
from greenroom.tools import (
    PURE,
    BudgetExhausted,
    Grant,
    ToolAccess,
    ToolBox,
    ToolCall,
    ToolError,
    ToolInputError,
    ToolRegistry,
    tool,
)
from greenroom.tools._arguments import MAX_DEPTH
from tests._fuzz import deep
from tests.tools._inputs import Done, Flat

pytestmark = pytest.mark.anyio


class Loose(msgspec.Struct, frozen=True, kw_only=True):
    """Any JSON under one field."""

    data: Any = None


RUNS: list[object] = []


@tool(effect=PURE)
async def note(input: Flat) -> Done:
    """Note a query."""
    RUNS.append(input)
    return Done()


@tool(effect=PURE)
async def keep(input: Loose) -> Done:
    """Keep any JSON."""
    RUNS.append(input)
    return Done()


VALID = {"query": "q", "limit": 1, "exact": True}

# (case, tool, how the arguments are passed, the arguments, the path the error names)
HOSTILE: dict[str, tuple[str, str, object, str | None]] = {
    "surrogate-in-a-mapping": ("note", "map", {**VALID, "query": "a\ud800b"}, "$.query"),
    "surrogate-in-json-text": (
        "note",
        "text",
        '{"query": "a\ud800b", "limit": 1, "exact": true}',
        None,
    ),
    "surrogate-escaped-in-json": (
        "note",
        "text",
        '{"query": "\\ud800", "limit": 1, "exact": true}',
        None,
    ),
    "surrogate-in-typed-input": (
        "note",
        "typed",
        Flat(query="\udfff", limit=1, exact=True),
        "$.query",
    ),
    "surrogate-deep-in-any": ("keep", "map", {"data": {"k": ["ok", "x\ud800"]}}, "$.data.k[1]"),
    "surrogate-in-a-key": ("keep", "map", {"data": {"\ud800": 1}}, "$.data"),
    "deeper-than-max-depth": ("keep", "map", {"data": deep(MAX_DEPTH + 1)}, "$"),
    "deep-past-recursion": ("keep", "map", {"data": deep(5000)}, "$"),
    "deep-json-text": ("keep", "text", '{"data": ' + "[" * 5000 + "]" * 5000 + "}", None),
    "not-json-encodable": ("keep", "typed", Loose(data=object()), "$"),
}


class Try(gr.Message):
    case: str


class Valid(gr.Message):
    pass


class Caller(gr.Actor):
    def __init__(self, errors: list[ToolError]) -> None:
        self.errors = errors

    @gr.handler
    async def attempt(self, msg: Try) -> str:
        name, how, arguments, _ = HOSTILE[msg.case]
        box = self.ctx.service(ToolBox)
        try:
            if how == "typed":
                await box.call_typed(note if name == "note" else keep, arguments)  # type: ignore[arg-type]
            else:
                await box.call(name, arguments)  # type: ignore[arg-type]
        except ToolError as exc:
            self.errors.append(exc)
            return type(exc).__name__
        return "ran"

    @gr.handler
    async def valid(self, msg: Valid) -> str:
        box = self.ctx.service(ToolBox)
        try:
            await box.call("note", VALID)
            await box.call("keep", {"data": deep(MAX_DEPTH - 1)})
        except ToolError as exc:
            return type(exc).__name__
        return "ran"


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_invalid_input_is_refused_before_the_budget_is_charged(case: str) -> None:
    RUNS.clear()
    records: list[ToolCall] = []
    grants = {"Caller": [Grant("note", budget=1), Grant("keep", budget=1)]}
    access = ToolAccess(ToolRegistry([note, keep]), grants=grants, on_call=records.append)
    errors: list[ToolError] = []
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=(errors,))
        answer = await ref.ask(Try(case=case), timeout=5)
        first = await ref.ask(Valid(), timeout=5)  # the one call of each budget is still there
        second = await ref.ask(Valid(), timeout=5)
    assert answer == "ToolInputError"
    [error] = errors
    assert isinstance(error, ToolInputError)
    assert error.path == HOSTILE[case][3]
    assert str(error).startswith(f"arguments for tool {HOSTILE[case][0]!r} are invalid")
    assert (records[0].ran, records[0].input) == (False, None)
    assert first == "ran"
    assert second == BudgetExhausted.__name__
    assert len(RUNS) == 2  # the two valid calls, nothing else


def test_a_surrogate_error_says_what_was_found_and_the_fix() -> None:
    with pytest.raises(ToolInputError) as caught:
        note.decode({**VALID, "query": "a\ud800b"})
    assert "lone surrogate '\\ud800'" in caught.value.reason
    assert "cannot be encoded as UTF-8" in caught.value.reason
