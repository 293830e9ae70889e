"""Decisions and store access inside a handler are spans of the handler's trace."""

from __future__ import annotations

import msgspec
import pytest

import greenroom as gr
from greenroom.decide import (
    Budget,
    BudgetExceeded,
    CallTool,
    ChatMessage,
    Context,
    DecisionGuard,
    Reply,
    Rule,
    RulesDecider,
    always,
    user_says,
)
from greenroom.store import ActorStoreView, MemoryStore, Scope, StoreAccess
from greenroom.trace import Tracer, genai


class Prefs(msgspec.Struct, frozen=True):
    language: str


PREFS: Scope[Prefs] = Scope("prefs", Prefs, owner="Owner", readers=["Agent"])
RULES = RulesDecider([Rule(user_says("hello"), Reply(text="hi"))], name="greeter")
LOOPER = RulesDecider([Rule(always, CallTool(name="t", arguments={"n": 1}))], name="looper")


class Ask(gr.Message):
    text: str


class Agent(gr.Actor):
    reads = (PREFS,)

    @gr.handler
    async def ask(self, msg: Ask) -> str:
        prefs = await self.ctx.service(ActorStoreView).get(PREFS, "ada")
        language = prefs.value.language if prefs else "?"
        context = Context(messages=(ChatMessage.user(msg.text),), facts={"language": language})
        decider = RULES if msg.text == "hello" else LOOPER
        guard = DecisionGuard(Budget(max_steps=1))
        result = await guard.decide(decider, context)
        result = await guard.decide(decider, context)  # a second step: over budget for LOOPER
        assert isinstance(result.final, Reply)
        return result.final.text


@pytest.mark.anyio
async def test_a_decision_and_the_reads_it_used_are_children_of_the_message_span() -> None:
    tracer = Tracer()
    store = MemoryStore()
    await store.write(PREFS, "ada", Prefs(language="fr"), writer="Owner")
    async with gr.Runtime(tracer=tracer, extensions=[StoreAccess(store)]) as rt:
        agent = await rt.spawn(Agent, name="agent", retry=gr.RetryPolicy(max_attempts=1))
        with pytest.raises(gr.HandlerError):
            await agent.ask(Ask(text="hello"))  # max_steps=1: the second step is over budget
    spans = tracer.drain()
    [message] = [s for s in spans if s.kind == "message"]
    children = [s for s in spans if s.parent_id == message.span_id]
    assert [(s.kind, s.name) for s in children] == [
        ("store", "read"),
        ("llm", "rules greeter"),
        ("budget", "budget max_steps"),
        ("supervisor", "dead_letter"),
        ("supervisor", "restart"),
    ]
    read, llm, budget = children[0], children[1], children[2]
    assert read.attributes["greenroom.scope"] == "prefs"
    assert read.attributes["greenroom.version"] == 1
    assert llm.attributes[genai.REQUEST_MODEL] == "greeter"
    assert llm.attributes[genai.DECISION] == [{"type": "Reply", "text": "hi", "value": None}]
    assert llm.attributes["greenroom.context"]["facts"] == {"language": "fr"}  # type: ignore[index]
    assert budget.status == "error"
    assert budget.error is not None
    assert budget.error.type == f"greenroom.{BudgetExceeded.__name__}"
