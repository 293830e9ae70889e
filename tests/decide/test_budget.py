"""Budgets: every limit stops the request with BudgetExceeded naming it; a decider that never
finishes ends in bounded time; the loop and no-progress detectors catch a misbehaving decider."""

from __future__ import annotations

import time

import anyio
import pytest

from greenroom.decide import (
    Budget,
    BudgetExceeded,
    BudgetTracker,
    CallTool,
    ChatMessage,
    Context,
    Decider,
    DecisionGuard,
    DecisionLoop,
    DecisionResult,
    InvalidDeciderConfig,
    LoopDetector,
    NoProgress,
    NoProgressDetector,
    Reply,
    Rule,
    RulesDecider,
    Usage,
    always,
)

pytestmark = pytest.mark.anyio

START = Context(messages=(ChatMessage.user("go"),))


async def run_until_done(
    decider: Decider, context: Context, guard: DecisionGuard, *, tool_output: str | None = None
) -> DecisionResult:
    """A minimal agent loop: decide, run each tool call (echoing its arguments), repeat."""
    while True:
        result = await guard.decide(decider, context)
        if result.final is not None:
            return result
        results = [
            ChatMessage.tool_result(c, tool_output or f"{c.name} ran with {c.arguments}")
            for c in result.tool_calls
        ]
        context = context.add(ChatMessage.assistant(calls=result.tool_calls), *results)


class Counting:
    """Calls the tool `step` with a new argument each time: never finishes, never repeats."""

    name = "counting"

    def __init__(self, *, calls_per_step: int = 1, tokens: int = 0) -> None:
        self.calls_per_step = calls_per_step
        self.tokens = tokens
        self.steps = 0

    async def decide(self, context: Context) -> DecisionResult:
        self.steps += 1
        calls = [
            CallTool(name="step", arguments={"n": self.steps, "i": i}, id=f"{self.steps}-{i}")
            for i in range(self.calls_per_step)
        ]
        usage = Usage(total_tokens=self.tokens) if self.tokens else None
        return DecisionResult.of(calls, model=self.name, usage=usage)


async def test_decider_that_never_finishes_ends_at_max_steps() -> None:
    decider = Counting()
    guard = DecisionGuard(Budget(max_steps=7, max_tool_calls=None))
    with pytest.raises(BudgetExceeded) as caught:
        await run_until_done(decider, START, guard)
    assert (caught.value.limit, caught.value.used, caught.value.maximum) == ("max_steps", 8, 7)
    assert decider.steps == 7  # the eighth step was refused before the decider ran


async def test_max_tool_calls_counts_parallel_calls_each() -> None:
    guard = DecisionGuard(Budget(max_steps=None, max_tool_calls=5))
    with pytest.raises(BudgetExceeded) as caught:
        await run_until_done(Counting(calls_per_step=2), START, guard)
    assert (caught.value.limit, caught.value.used, caught.value.maximum) == ("max_tool_calls", 6, 5)
    assert guard.tracker.usage().steps == 3


async def test_max_tokens_sums_reported_usage() -> None:
    guard = DecisionGuard(Budget(max_steps=None, max_tool_calls=None, max_tokens=1000))
    with pytest.raises(BudgetExceeded) as caught:
        await run_until_done(Counting(tokens=300), START, guard)
    assert (caught.value.limit, caught.value.used, caught.value.maximum) == (
        "max_tokens",
        1200,
        1000,
    )


async def test_deadline_refuses_a_step_that_would_start_after_it() -> None:
    now = [0.0]
    tracker = BudgetTracker(Budget(deadline=10.0), clock=lambda: now[0])
    tracker.begin_step()
    now[0] = 10.5
    assert tracker.remaining_seconds() == 0.0
    with pytest.raises(BudgetExceeded) as caught:
        tracker.begin_step()
    assert (caught.value.limit, caught.value.maximum) == ("deadline", 10.0)
    assert caught.value.used == 10.5


async def test_deadline_cancels_a_decider_that_hangs() -> None:
    class Hangs:
        name = "hangs"

        async def decide(self, context: Context) -> DecisionResult:
            await anyio.Event().wait()
            raise AssertionError("unreachable")

    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as caught:
        await BudgetTracker(Budget(deadline=0.05)).decide(Hangs(), START)
    assert caught.value.limit == "deadline"
    assert time.monotonic() - started < 2.0


async def test_within_budget_a_request_finishes_and_usage_is_counted() -> None:
    rules = RulesDecider(
        [Rule(lambda c: c.messages[-1].role == "tool", Reply(text="done"))],
        default=CallTool(name="lookup", arguments={"q": "x"}),
    )
    guard = DecisionGuard(Budget(max_steps=2, max_tool_calls=1))
    result = await run_until_done(rules, START, guard)
    assert result.final == Reply(text="done")
    usage = guard.tracker.usage()
    assert (usage.steps, usage.tool_calls, usage.tokens) == (2, 1, 0)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_steps", 0), ("max_tool_calls", -1), ("max_tokens", 1.5), ("deadline", 0.0)],
)
def test_budget_refuses_limits_that_cannot_work(field: str, value: float) -> None:
    with pytest.raises(InvalidDeciderConfig, match=f"Budget.{field}"):
        Budget(**{field: value})  # type: ignore[arg-type]


def test_budget_none_means_no_limit() -> None:
    tracker = BudgetTracker(Budget(max_steps=None, max_tool_calls=None, deadline=None))
    for _ in range(10_000):
        tracker.begin_step()
    assert tracker.remaining_seconds() is None


# --- detectors ----------------------------------------------------------------------------------


async def test_loop_detector_catches_a_decider_that_repeats_one_tool_call() -> None:
    repeats = RulesDecider([Rule(always, CallTool(name="search", arguments={"q": "same", "n": 1}))])
    guard = DecisionGuard(Budget(max_steps=100))
    with pytest.raises(DecisionLoop) as caught:
        await run_until_done(repeats, START, guard)
    assert (caught.value.tool, caught.value.arguments) == ("search", '{"n":1,"q":"same"}')
    assert caught.value.count == 2
    assert guard.tracker.usage().steps == 2  # caught on the first repeat, long before the budget


def test_loop_detector_compares_arguments_whatever_their_key_order() -> None:
    detector = LoopDetector()
    detector.observe(DecisionResult.of(CallTool(name="t", arguments={"a": 1, "b": 2}), model="m"))
    with pytest.raises(DecisionLoop):
        detector.observe(
            DecisionResult.of(CallTool(name="t", arguments={"b": 2, "a": 1}), model="m")
        )


def test_loop_detector_forgets_calls_older_than_its_window() -> None:
    detector = LoopDetector(window=3)
    same = DecisionResult.of(CallTool(name="t", arguments={"a": 1}), model="m")
    detector.observe(same)
    for n in range(2):
        detector.observe(DecisionResult.of(CallTool(name="t", arguments={"a": 10 + n}), model="m"))
    detector.observe(same)  # three steps later: outside the window of 3
    with pytest.raises(DecisionLoop):
        detector.observe(same)


def test_loop_detector_allows_max_repeats_then_faults() -> None:
    detector = LoopDetector(window=5, max_repeats=1)
    same = DecisionResult.of(CallTool(name="t", arguments={}), model="m")
    detector.observe(same)
    detector.observe(same)  # one retry allowed
    with pytest.raises(DecisionLoop) as caught:
        detector.observe(same)
    assert caught.value.count == 3


def test_loop_detector_catches_the_same_call_twice_in_one_parallel_step() -> None:
    call = CallTool(name="t", arguments={"x": 1})
    with pytest.raises(DecisionLoop):
        LoopDetector(window=1).observe(DecisionResult.of([call, call], model="m"))


async def test_no_progress_detector_catches_steps_whose_tool_results_repeat() -> None:
    counting = Counting()  # new arguments every step, so no loop: but always the same result
    guard = DecisionGuard(Budget(max_steps=50), progress=NoProgressDetector(max_idle_steps=3))
    with pytest.raises(NoProgress) as caught:
        await run_until_done(counting, START, guard, tool_output="nothing found")
    assert (caught.value.steps, caught.value.limit) == (3, 3)
    assert counting.steps == 5  # step 2 saw the first result (progress); 3, 4, 5 saw nothing new


async def test_new_tool_results_count_as_progress() -> None:
    guard = DecisionGuard(
        Budget(max_steps=20, max_tool_calls=None), progress=NoProgressDetector(max_idle_steps=2)
    )
    with pytest.raises(BudgetExceeded):
        await run_until_done(
            Counting(), START, guard
        )  # each result is new: only the budget stops it


def test_a_reply_counts_as_progress_and_reset_forgets() -> None:
    detector = NoProgressDetector(max_idle_steps=2)
    call = DecisionResult.of(CallTool(name="t"), model="m")
    detector.observe(START, call)
    detector.observe(START, DecisionResult.of(Reply(text="hi"), model="m"))
    assert detector.idle_steps == 0
    detector.observe(START, call)
    detector.reset()
    detector.observe(START, call)
    assert detector.idle_steps == 1


def test_detectors_refuse_settings_that_cannot_work() -> None:
    with pytest.raises(InvalidDeciderConfig):
        LoopDetector(window=0)
    with pytest.raises(InvalidDeciderConfig):
        LoopDetector(max_repeats=-1)
    with pytest.raises(InvalidDeciderConfig):
        NoProgressDetector(max_idle_steps=0)
