"""Decision faults are supervised like crashes; the policy after them is applied and visible."""

from __future__ import annotations

import anyio
import pytest

import greenroom as gr
from greenroom.decide import (
    Budget,
    CallTool,
    ChatMessage,
    Context,
    Decider,
    DecisionGuard,
    FaultPolicy,
    LoopDetector,
    Reply,
    Rule,
    RulesDecider,
    always,
)

LOOPING = RulesDecider(
    [Rule(always, CallTool(name="lookup", arguments={"order": 1}))], name="loops"
)
FIXED = RulesDecider([Rule(always, Reply(text="done"))], name="fixed")
NO_BACKOFF = gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class Ask(gr.Message):
    question: str


class NeedsPerson(gr.Message):
    """The approval message an escalating worker sends to a person."""

    question: str
    reason: str


class Person(gr.Actor):
    def __init__(self, inbox: list[NeedsPerson], got: anyio.Event) -> None:
        self.inbox = inbox
        self.got = got

    @gr.handler
    async def needs(self, msg: NeedsPerson) -> None:
        self.inbox.append(msg)
        self.got.set()


class Worker(gr.Actor):
    """Runs guarded decision steps; after a decision fault, follows the policy."""

    def __init__(
        self, deciders: tuple[Decider, ...], policy: FaultPolicy, log: list[str], budget: Budget
    ) -> None:
        self.deciders = deciders
        self.policy = policy
        self.log = log
        self.budget = budget
        self.model = 0
        self.escalated: str | None = None

    async def on_restart(self, error: gr.ErrorInfo) -> None:
        if not self.policy.is_fault(error):
            return
        faults = self.ctx.failures
        action = self.policy.action(faults)
        self.log.append(f"{error.type} -> {action}")
        fallbacks = [self.policy.action(n) for n in range(1, faults + 1)].count("fallback")
        self.model = min(fallbacks, len(self.deciders) - 1)
        if action == "escalate":
            self.escalated = error.message

    @gr.handler
    async def ask(self, msg: Ask) -> str:
        if self.escalated is not None:
            await self.ctx.runtime.ref("person").tell(
                NeedsPerson(question=msg.question, reason=self.escalated)
            )
            return "escalated to a person"
        decider = self.deciders[self.model]
        guard = DecisionGuard(self.budget, loop=LoopDetector(window=4))
        context = Context(messages=(ChatMessage.user(msg.question),))
        while True:
            result = await guard.decide(decider, context)
            if result.final is not None:
                assert isinstance(result.final, Reply)
                return f"{decider.name}: {result.final.text}"
            calls = result.tool_calls
            context = context.add(
                ChatMessage.assistant(calls=calls),
                *(ChatMessage.tool_result(call, "order 1: shipped") for call in calls),
            )


def worker(
    deciders: tuple[Decider, ...],
    policy: FaultPolicy,
    log: list[str],
    budget: Budget | None = None,
) -> gr.ChildSpec:
    return gr.ChildSpec(
        actor=Worker,
        id="worker",
        args=(deciders, policy, log, budget or Budget(max_steps=10)),
        retry=gr.RetryPolicy(max_attempts=3, backoff=NO_BACKOFF),
    )


@pytest.mark.anyio
async def test_a_loop_restarts_the_worker_with_a_fresh_context_then_falls_back() -> None:
    log: list[str] = []
    policy = FaultPolicy(steps=("fresh_context", "fallback"))
    async with gr.Runtime() as rt:
        spec = gr.SupervisorSpec(
            id="agents", backoff=NO_BACKOFF, children=(worker((LOOPING, FIXED), policy, log),)
        )
        sup = await rt.spawn(spec)
        answer = await rt.ref("agents/worker").ask(Ask(question="where is order 1?"))
        [child] = await sup.which_children()
    assert answer == "fixed: done"
    assert log == [
        "greenroom.DecisionLoop -> fresh_context",
        "greenroom.DecisionLoop -> fallback",
    ]
    assert child.failures == 2  # each fault was a crash the supervisor handled


@pytest.mark.anyio
async def test_escalation_hands_the_request_to_a_person_through_a_message() -> None:
    log: list[str] = []
    inbox: list[NeedsPerson] = []
    got = anyio.Event()
    policy = FaultPolicy(steps=("escalate",))
    async with gr.Runtime() as rt:
        await rt.spawn(Person, name="person", args=(inbox, got))
        spec = gr.SupervisorSpec(
            id="agents", backoff=NO_BACKOFF, children=(worker((LOOPING,), policy, log),)
        )
        await rt.spawn(spec)
        answer = await rt.ref("agents/worker").ask(Ask(question="refund order 1"))
        with anyio.fail_after(5):
            await got.wait()
    assert answer == "escalated to a person"
    assert log == ["greenroom.DecisionLoop -> escalate"]
    assert inbox[0].question == "refund order 1"
    assert "lookup" in inbox[0].reason


@pytest.mark.anyio
async def test_decision_faults_count_toward_restart_intensity() -> None:
    log: list[str] = []
    policy = FaultPolicy(steps=("fresh_context",))  # never gets better
    outcome: list[BaseException] = []

    async def run() -> None:
        async with gr.Runtime(gr.RuntimeConfig(root_max_restarts=0)) as rt:
            spec = gr.SupervisorSpec(
                id="agents",
                backoff=NO_BACKOFF,
                max_restarts=1,
                children=(worker((LOOPING,), policy, log),),
            )
            await rt.spawn(spec)
            try:
                await rt.ref("agents/worker").ask(Ask(question="loop forever"), timeout=5)
            except gr.GreenroomError as exc:
                outcome.append(exc)
            with anyio.fail_after(5):
                await rt.wait_stopped()

    with pytest.raises(gr.Escalated):
        await run()
    assert [type(e) for e in outcome] == [gr.ActorStopped]
    assert log == ["greenroom.DecisionLoop -> fresh_context"]


@pytest.mark.anyio
async def test_budget_exceeded_ends_the_request_without_a_retry() -> None:
    counting = RulesDecider(
        [Rule(always, lambda ctx: CallTool(name="lookup", arguments={"n": len(ctx.messages)}))],
        name="counts",
    )
    log: list[str] = []
    async with gr.Runtime() as rt:
        spec = gr.SupervisorSpec(
            id="agents",
            backoff=NO_BACKOFF,
            children=(worker((counting,), FaultPolicy(), log, Budget(max_steps=3)),),
        )
        await rt.spawn(spec)
        with pytest.raises(gr.HandlerError) as info:
            await rt.ref("agents/worker").ask(Ask(question="never finishes"))
    assert info.value.error_type == "greenroom.BudgetExceeded"
    assert info.value.attempts == 1
    assert "max_steps" in info.value.error_message
    assert log == []  # not a decision fault: no policy step


def test_fault_policy_repeats_its_last_step_and_rejects_unknown_actions() -> None:
    policy = FaultPolicy(steps=("fresh_context", "escalate"))
    assert [policy.action(n) for n in (1, 2, 3, 9)] == [
        "fresh_context",
        "escalate",
        "escalate",
        "escalate",
    ]
    with pytest.raises(gr.UsageError):
        FaultPolicy(steps=("reboot",))  # type: ignore[arg-type]
    with pytest.raises(gr.UsageError):
        FaultPolicy(steps=())
