"""Delegate decisions: another agent takes the task, its answer comes back as an observation."""

from __future__ import annotations

import anyio
import pytest

import greenroom as gr
from greenroom.agent import (
    DELEGATE_TOOL,
    Answer,
    Coordinator,
    Delegator,
    Request,
    conversation_workers,
)
from greenroom.decide import (
    Budget,
    Context,
    Delegate,
    Reply,
    Rule,
    RulesDecider,
    always,
    last_tool_result,
    tool_returned,
    user_says,
)
from greenroom.trace import Tracer
from tests.agent._kit import CONVERSATIONS, RULES, desk, worker_spec

pytestmark = pytest.mark.anyio

GATE: anyio.Event | None = None
received: list[Request] = []


class Billing(gr.Actor):
    """Another agent, as plain as can be: answers invoices, breaks or waits on demand."""

    @gr.handler
    async def request(self, msg: Request) -> Answer:
        received.append(msg)
        if msg.text == "break":
            raise ValueError("the ledger is locked")
        if msg.text == "wait" and GATE is not None:
            await GATE.wait()
        return Answer(conversation=msg.conversation, status="replied", text="invoice 7 is paid")


def relay(context: Context) -> Reply:
    return Reply(text=f"billing says: {last_tool_result(context)}")


DELEGATING = RulesDecider(
    [
        Rule(tool_returned(DELEGATE_TOOL), relay),
        Rule(user_says("invoice"), Delegate(to="billing", task="is invoice 7 paid?")),
        Rule(user_says("nobody"), Delegate(to="nobody", task="anything")),
        Rule(user_says("broken"), Delegate(to="billing", task="break")),
        Rule(user_says("slow"), Delegate(to="billing", task="wait")),
    ],
    default=Reply(text="hello"),
)

BILLING = gr.ChildSpec(actor=Billing, id="billing", retry=gr.RetryPolicy(max_attempts=1))
TO_BILLING = Delegator({"billing": "desk/billing"})


@pytest.fixture(autouse=True)
def _clean() -> None:
    received.clear()


async def test_a_delegated_task_is_answered_by_the_other_agent_and_the_turn_goes_on() -> None:
    spec = worker_spec(DELEGATING, delegator=TO_BILLING)
    async with desk(spec, children=(BILLING,)) as d:
        answer = await d.ask("c1", "is my invoice paid?")
        record = await d.store.get(CONVERSATIONS, "c1")
    assert isinstance(answer, Answer)
    assert (answer.status, answer.text) == ("replied", "billing says: invoice 7 is paid")
    assert received == [Request(conversation="c1>billing", text="is invoice 7 paid?", user="ada")]
    assert record is not None
    messages = record.value.messages
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    call = messages[1].tool_calls[0]
    task = received[0].text
    assert (call.name, call.arguments) == (DELEGATE_TOOL, {"to": "billing", "task": task})
    assert (messages[2].name, messages[2].tool_call_id) == (DELEGATE_TOOL, call.id)
    assert messages[2].content == "invoice 7 is paid"


async def test_a_task_delegated_to_another_coordinator_is_traced_under_the_delegation() -> None:
    tracer = Tracer()
    billing = Coordinator(
        "billing",
        routes={Request: "agents"},
        pools=[conversation_workers("agents", worker_spec(RULES))],
    )
    spec = worker_spec(DELEGATING, delegator=Delegator({"billing": "desk/billing/router"}))
    async with desk(spec, children=(billing.spec(),), tracer=tracer) as d:
        with tracer.span("internal", "test") as root:
            answer = await d.ask("c1", "is my invoice paid?")
    assert isinstance(answer, Answer)
    assert answer.text == "billing says: en: hello, message 2"  # its system message, the task
    spans = {s.span_id: s for s in tracer.drain() if s.trace_id == root.trace_id}
    delegation = [s for s in spans.values() if s.kind == "delegate"]
    assert [(s.name, s.attributes["greenroom.task"]) for s in delegation] == [
        ("billing", "is invoice 7 paid?")
    ]
    worked = [
        s
        for s in spans.values()
        if s.kind == "message" and s.actor and s.actor.startswith("desk/billing/agents/")
    ]
    assert len(worked) == 1
    parent = worked[0].parent_id
    while parent is not None and parent != delegation[0].span_id:
        parent = spans[parent].parent_id
    assert parent == delegation[0].span_id  # the other agent's work is inside the delegation


async def test_an_unknown_delegate_comes_back_to_the_decider_as_an_error() -> None:
    spec = worker_spec(DELEGATING, delegator=TO_BILLING)
    async with desk(spec, children=(BILLING,)) as d:
        answer = await d.ask("c1", "ask nobody")
    assert isinstance(answer, Answer)
    assert answer.text == (
        "billing says: error: the decider delegated to 'nobody', which this worker may not "
        "delegate to; it may delegate to: billing (add the agent to Delegator(agents=...))"
    )
    assert received == []


async def test_a_worker_without_delegates_may_delegate_to_nobody() -> None:
    async with desk(worker_spec(DELEGATING), children=(BILLING,)) as d:
        answer = await d.ask("c1", "is my invoice paid?")
    assert isinstance(answer, Answer)
    assert "it may delegate to: nobody" in answer.text
    assert received == []


async def test_a_failing_delegate_comes_back_to_the_decider_as_an_error() -> None:
    spec = worker_spec(DELEGATING, delegator=TO_BILLING)
    async with desk(spec, children=(BILLING,)) as d:
        answer = await d.ask("c1", "it is broken")
        again = await d.ask("c2", "is my invoice paid?")  # the delegate was restarted
    assert isinstance(answer, Answer)
    assert answer.status == "replied"
    assert answer.text == (
        "billing says: error: desk/billing failed to handle Request after 1 attempt(s): "
        "ValueError: the ledger is locked"
    )
    assert isinstance(again, Answer)
    assert again.text == "billing says: invoice 7 is paid"


async def test_delegating_again_and_again_ends_at_the_turns_step_budget() -> None:
    forever = RulesDecider([Rule(always, Delegate(to="billing", task="is invoice 7 paid?"))])
    spec = worker_spec(forever, delegator=TO_BILLING, budget=Budget(max_steps=3))
    async with desk(spec, children=(BILLING,)) as d:
        with pytest.raises(gr.HandlerError) as caught:
            await d.ask("c1", "hi")
    assert caught.value.error_type.endswith("BudgetExceeded")
    assert "max_steps" in caught.value.error_message
    assert caught.value.attempts == 1  # never retried
    assert len(received) == 3


async def test_a_delegate_slower_than_the_turns_deadline_ends_the_turn() -> None:
    global GATE
    GATE = anyio.Event()
    spec = worker_spec(DELEGATING, delegator=TO_BILLING, budget=Budget(deadline=0.2))
    try:
        async with desk(spec, children=(BILLING,)) as d:
            with anyio.fail_after(5), pytest.raises(gr.HandlerError) as caught:
                await d.ask("c1", "slow, please")
            GATE.set()
    finally:
        GATE = None
    assert caught.value.error_type.endswith("BudgetExceeded")
    assert "deadline" in caught.value.error_message
