"""The Worker's decide-act loop: tools, freshness, budgets and approvals."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import msgspec
import pytest

import greenroom as gr
from greenroom.agent import Answer, Conversation, Worker, conversation_scope
from greenroom.decide import Budget, CallTool, Context, Rule, RulesDecider, always
from greenroom.tools import Approve, Deny
from greenroom.trace import Tracer
from tests.agent._kit import (
    BUILDER,
    CALLS,
    CONVERSATIONS,
    PREFS,
    RULES,
    Hooked,
    Prefs,
    desk,
    worker_spec,
)

pytestmark = pytest.mark.anyio

OWN = conversation_scope("test.undeclared", owner="Undeclared")


class Undeclared(Worker):
    """Keeps conversations, but does not declare the scopes its builder reads."""

    writes = (OWN,)


async def test_a_tool_call_runs_and_its_result_goes_back_to_the_decider() -> None:
    async with desk() as d:
        answer = await d.ask("c1", "where is my order?")
    assert isinstance(answer, Answer)
    assert answer.status == "replied"
    assert answer.text == 'en: {"order":7,"status":"shipped"}'
    assert CALLS.lookups == [7]


async def test_the_conversation_is_saved_in_the_store_after_each_turn() -> None:
    async with desk() as d:
        await d.ask("c1", "hi")
        await d.ask("c1", "where is my order?")
        record = await d.store.get(CONVERSATIONS, "c1")
    assert record is not None
    saved = record.value
    assert saved.turns == 2
    roles = [m.role for m in saved.messages]
    assert roles == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert record.version == 2


async def test_a_decision_made_on_stale_context_is_redone_before_it_acts() -> None:
    changed: list[bool] = []

    async def change_language_once(context: Context) -> None:
        if not changed:
            changed.append(True)
            await store.write(PREFS, "ada", Prefs(language="fr"))

    async with desk(worker_spec(Hooked(RULES, change_language_once))) as d:
        store = d.store
        await store.write(PREFS, "ada", Prefs(language="en"))
        answer = await d.ask("c1", "where is my order?")
    assert isinstance(answer, Answer)
    assert answer.redos == 1
    assert answer.text.startswith("fr: ")  # decided again, on the new preference
    assert CALLS.lookups == [7]  # the stale decision (a lookup) never ran


async def test_a_redo_is_a_span_of_the_request_trace() -> None:
    tracer = Tracer()
    changed: list[bool] = []

    async def change_once(context: Context) -> None:
        if not changed:
            changed.append(True)
            await store.write(PREFS, "ada", Prefs(language="fr"))

    async with desk(worker_spec(Hooked(RULES, change_once)), tracer=tracer) as d:
        store = d.store
        with tracer.span("internal", "test request") as root:
            await d.ask("c1", "hi")
    spans = [s for s in tracer.drain() if s.trace_id == root.trace_id]
    redo = [s for s in spans if s.kind == "redo"]
    assert len(redo) == 1
    assert redo[0].attributes["greenroom.stale"] == ["test.prefs/ada@0"]
    inside = {s.kind for s in spans if s.parent_id == redo[0].span_id}
    assert {"store", "llm"} <= inside  # the rebuild's reads and the new decision


async def test_a_turn_past_its_budget_ends_with_budget_exceeded_and_is_not_retried() -> None:
    def next_order(context: Context) -> CallTool:  # a new order each step: no loop, no stall
        return CallTool(name="lookup_order", arguments={"order": len(context.messages)})

    looping = RulesDecider([Rule(always, next_order)])
    spec = worker_spec(looping, budget=Budget(max_steps=3, max_tool_calls=None))
    async with desk(spec) as d:
        with pytest.raises(gr.HandlerError) as caught:
            await d.ask("c1", "loop")
        record = await d.store.get(CONVERSATIONS, "c1")
    assert caught.value.error_type.endswith("BudgetExceeded")
    assert caught.value.attempts == 1
    assert record is None  # the failed turn left no state behind


async def test_a_call_needing_approval_parks_and_the_worker_answers_other_messages() -> None:
    async with desk() as d:
        parked = await d.ask("c1", "refund please")
        assert isinstance(parked, Answer)
        assert (parked.status, parked.tool) == ("awaiting_approval", "refund_order")
        assert parked.ticket is not None
        assert CALLS.refunds == []  # held at the gate
        other = await d.ask("c2", "hi")  # the same worker (pool of one) is free
        again = await d.ask("c1", "anything?")
        assert CALLS.refunds == []
        done = await d.resolve("c1", Approve(ticket=parked.ticket, by="lead"))
    assert isinstance(other, Answer)
    assert other.status == "replied"
    assert isinstance(again, Answer)
    assert (again.status, again.ticket) == ("awaiting_approval", parked.ticket)
    assert isinstance(done, Answer)
    assert (done.status, done.text) == ("replied", 'refunded: {"refunded":7}')
    assert CALLS.refunds == [7]


async def test_a_denied_call_never_runs_and_the_decider_reads_the_denial() -> None:
    async with desk() as d:
        parked = await d.ask("c1", "refund please")
        assert isinstance(parked, Answer)
        assert parked.ticket is not None
        done = await d.resolve("c1", Deny(ticket=parked.ticket, reason="not eligible"))
        record = await d.store.get(CONVERSATIONS, "c1")
    assert isinstance(done, Answer)
    assert done.text == "refunded: denied: not eligible"
    assert CALLS.refunds == []
    assert record is not None
    assert record.value.parked is None


async def test_an_expired_approval_unparks_the_conversation_and_the_call_never_runs() -> None:
    async with desk(approval_timeout=0.01) as d:
        parked = await d.ask("c1", "refund please")
        assert isinstance(parked, Answer)
        with anyio.fail_after(5):  # the ticket's own timer sends Expire to the worker
            while True:
                record = await d.store.get(CONVERSATIONS, "c1")
                assert record is not None
                if record.value.parked is None:
                    break
                await anyio.lowlevel.checkpoint()
        after = await d.ask("c1", "hi")
    assert record.value.messages[-1].content == "error: approval expired; the tool did not run"
    assert isinstance(after, Answer)
    assert after.status == "replied"
    assert CALLS.refunds == []


async def test_resolving_a_ticket_the_conversation_did_not_park_is_refused() -> None:
    async with desk() as d:
        await d.ask("c1", "hi")
        with pytest.raises(gr.HandlerError) as caught:
            await d.resolve("c1", Approve(ticket="nope"))
    assert caught.value.error_type.endswith("UsageError")
    assert caught.value.attempts == 1


async def test_a_worker_that_does_not_declare_its_fact_scopes_fails_to_start() -> None:
    spec = gr.ChildSpec(actor=Undeclared, args=(RULES, BUILDER), kwargs={"conversations": OWN})
    with pytest.raises(gr.UsageError, match=r"add them to Undeclared\.reads"):
        async with desk(spec):
            pass


async def test_conversation_state_round_trips_through_msgpack() -> None:
    async with desk() as d:
        await d.ask("c1", "where is my order?")
        record = await d.store.get(CONVERSATIONS, "c1")
    assert record is not None
    data = msgspec.msgpack.encode(record.value)
    assert msgspec.msgpack.decode(data, type=Conversation) == record.value
