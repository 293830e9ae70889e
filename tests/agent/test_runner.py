"""ToolRunner runs a call once: failures propagate to the supervisor, which retries the message."""

from __future__ import annotations

import pytest

import greenroom as gr
from greenroom.agent import Answer
from greenroom.decide import (
    CallTool,
    Context,
    Reply,
    Rule,
    RulesDecider,
    last_tool_result,
    user_says,
)
from tests.agent._kit import CALLS, desk, worker_spec

pytestmark = pytest.mark.anyio


async def test_the_runner_never_retries_a_failed_tool_on_its_own() -> None:
    async with desk(worker_spec(attempts=1)) as d:
        CALLS.fail_next = 1
        with pytest.raises(gr.HandlerError) as caught:
            await d.ask("c1", "where is my order?")
    assert caught.value.error_type.endswith("ToolFailed")
    assert CALLS.lookups == [7]  # one call: no hidden retry


async def test_a_failed_tool_is_retried_by_the_supervisor_with_the_whole_message() -> None:
    async with desk(worker_spec(attempts=3)) as d:
        CALLS.fail_next = 1
        answer = await d.ask("c1", "where is my order?")
        pool = d.runtime.ref("desk/workers")
        assert isinstance(pool, gr.SupervisorRef)
        [worker] = await pool.which_children()
    assert isinstance(answer, Answer)
    assert answer.text == 'en: {"order":7,"status":"shipped"}'
    assert CALLS.lookups == [7, 7]
    assert worker.failures == 1  # the crash went through the supervisor


def _echo_error(context: Context) -> Reply:
    return Reply(text=last_tool_result(context) or "")


FEEDBACK = RulesDecider(
    [
        Rule(lambda c: c.messages[-1].role == "tool", _echo_error),
        Rule(user_says("bad"), CallTool(name="lookup_order", arguments={"order": "seven"})),
        Rule(user_says("ungranted"), CallTool(name="fly_to_the_moon", arguments={})),
    ]
)


async def test_invalid_arguments_come_back_to_the_decider_as_the_tool_result() -> None:
    async with desk(worker_spec(FEEDBACK, attempts=1)) as d:
        answer = await d.ask("c1", "bad arguments")
    assert isinstance(answer, Answer)
    assert answer.text.startswith("error: ")
    assert "Expected `int`, got `str`" in answer.text
    assert CALLS.lookups == []


async def test_a_refused_call_comes_back_to_the_decider_and_nothing_runs() -> None:
    async with desk(worker_spec(FEEDBACK, attempts=1)) as d:
        answer = await d.ask("c1", "an ungranted tool")
    assert isinstance(answer, Answer)
    assert answer.text.startswith("error: ")
    assert "fly_to_the_moon" in answer.text
