"""Fuzz: any arguments a model (or code) passes give the tool's Input or a ToolInputError, through
a real ToolBox, and an invalid call is never charged to the grant's budget."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from tests._fuzz import FUZZ_SETTINGS, deep, hostile_bytes, hostile_values, record
from tests.tools._inputs import Done, Flat

pytestmark = pytest.mark.anyio


class Loose(msgspec.Struct, frozen=True, kw_only=True):
    """Any JSON under one field, and a typed one."""

    data: Any = None
    tags: list[str] = []


RAN: list[object] = []


@tool(effect=PURE)
async def note(input: Flat) -> Done:
    """Note a query."""
    RAN.append(input)
    return Done()


@tool(effect=PURE)
async def keep(input: Loose) -> Done:
    """Keep any JSON."""
    RAN.append(input)
    return Done()


GOOD = b'{"query": "q", "limit": 1, "exact": true}'


def _hostile_text(value: object) -> str:
    try:
        return msgspec.json.encode(value).decode()
    except Exception:
        return "[" * 3000 + "]" * 3000


ARGUMENTS = st.one_of(
    hostile_bytes(GOOD),
    hostile_bytes(GOOD).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
    hostile_values(),
    hostile_values().map(lambda v: {"query": v, "limit": 1, "exact": True}),
    hostile_values().map(lambda v: {"data": v, "tags": ["a"]}),
    hostile_values().map(lambda v: {"data": 1, "tags": [v]}),
    hostile_values().map(lambda v: {"data": {"\ud800": v}}),
    hostile_values().map(_hostile_text),
    st.sampled_from(['{"query": "\\ud800", "limit": 1, "exact": true}', '{"data": NaN}']),
    st.just({"data": deep(129)}),
    st.text(max_size=40),
)


class Attempt(gr.Message):
    at: int


CASES: list[tuple[str, object]] = []


class Caller(gr.Actor):
    @gr.handler
    async def attempt(self, msg: Attempt) -> str:
        name, arguments = CASES[msg.at]  # hostile values never cross a mailbox
        try:
            await self.ctx.service(ToolBox).call(name, arguments)  # type: ignore[arg-type]
        except ToolInputError:
            return "typed"
        except ToolError as exc:
            return type(exc).__name__
        except Exception as exc:
            return f"escaped {type(exc).__name__}: {exc}"
        return "accepted"


@FUZZ_SETTINGS
@given(cases=st.lists(st.tuples(st.sampled_from(["note", "keep"]), ARGUMENTS), max_size=4))
async def test_arguments_validate_or_are_refused_before_any_charge(
    cases: list[tuple[str, object]],
) -> None:
    CASES[:] = [*cases, ("note", GOOD.decode()), ("keep", '{"data": [1]}')]
    RAN.clear()
    budget = len(CASES)
    records: list[ToolCall] = []
    grants = {"Caller": [Grant("note", budget=budget), Grant("keep", budget=budget)]}
    access = ToolAccess(ToolRegistry([note, keep]), grants=grants, on_call=records.append)
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller")
        outcomes = [await ref.ask(Attempt(at=i), timeout=5) for i in range(len(CASES))]
        for outcome in outcomes[:-2]:
            record("tool-arguments", outcome if outcome in ("accepted", "typed") else "escaped")
        assert all(o in ("accepted", "typed") for o in outcomes), outcomes
        assert outcomes[-2:] == ["accepted", "accepted"]  # good calls next to bad ones run
        # every invalid call left its budget untouched: exactly the rest can still be made
        spent = dict.fromkeys(("note", "keep"), 0)
        for (name, _), outcome in zip(CASES, outcomes, strict=True):
            spent[name] += outcome == "accepted"
        CASES[:] = [("note", GOOD.decode()), ("keep", "{}")]
        for at, name in enumerate(("note", "keep")):
            left = [await ref.ask(Attempt(at=at), timeout=5) for _ in range(budget - spent[name])]
            assert set(left) == {"accepted"}
            assert await ref.ask(Attempt(at=at), timeout=5) == BudgetExhausted.__name__
    assert [r.ran for r in records] == [r.error is None for r in records]
    assert len(RAN) == sum(r.ran for r in records)
