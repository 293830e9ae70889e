"""The rules decider: the first matching rule decides, deterministically and offline."""

from __future__ import annotations

import msgspec
import pytest

from greenroom.decide import (
    CallTool,
    ChatMessage,
    Context,
    Decider,
    Decision,
    DecisionResult,
    Delegate,
    Finish,
    NoRuleMatched,
    Reply,
    Rule,
    RulesDecider,
    last_tool_result,
    tool_returned,
    user_says,
)

pytestmark = pytest.mark.anyio

WEATHER = RulesDecider(
    [
        Rule(
            tool_returned("get_weather"), lambda ctx: Reply(text=f"It is {last_tool_result(ctx)}.")
        ),
        Rule(user_says("weather"), CallTool(name="get_weather", arguments={"city": "Paris"})),
        Rule(user_says("help"), Delegate(to="support", task="help the user")),
        Rule(user_says("both"), [CallTool(name="a"), CallTool(name="b")]),
    ],
    default=Finish(reason="nothing to do"),
)


async def test_first_matching_rule_decides_and_tool_calls_get_stable_ids() -> None:
    context = Context(messages=(ChatMessage.user("What's the WEATHER like?"),))
    first = await WEATHER.decide(context)
    again = await WEATHER.decide(context)
    assert first == again
    assert first.decisions == (
        CallTool(name="get_weather", arguments={"city": "Paris"}, id="rules-0"),
    )
    assert first.model == "rules"
    call = first.tool_calls[0]
    context = context.add(
        ChatMessage.assistant(calls=[call]), ChatMessage.tool_result(call, "sunny")
    )
    second = await WEATHER.decide(context)
    assert second.final == Reply(text="It is sunny.")


async def test_rules_decide_delegation_parallel_calls_and_the_default() -> None:
    help_ = await WEATHER.decide(Context(messages=(ChatMessage.user("help!"),)))
    both = await WEATHER.decide(Context(messages=(ChatMessage.user("both"),)))
    other = await WEATHER.decide(Context(messages=(ChatMessage.user("hello"),)))
    assert help_.final == Delegate(to="support", task="help the user")
    assert [c.id for c in both.tool_calls] == ["rules-0", "rules-1"]
    assert other.final == Finish(reason="nothing to do")


async def test_no_matching_rule_without_default_is_a_usage_error_naming_the_fix() -> None:
    rules = RulesDecider([Rule(user_says("x"), Finish())], name="strict")
    with pytest.raises(NoRuleMatched, match="pass default=") as caught:
        await rules.decide(Context(messages=(ChatMessage.user("y"),)))
    assert caught.value.decider == "strict"


def test_rules_decider_satisfies_the_decider_protocol() -> None:
    assert isinstance(WEATHER, Decider)


@pytest.mark.parametrize(
    "decision",
    [
        CallTool(name="t", arguments={"a": [1, "x"]}, id="c"),
        Reply(text="hi"),
        Delegate(to="b", task="t"),
        Finish(),
    ],
)
def test_decisions_round_trip_through_json_and_msgpack_as_a_tagged_union(
    decision: Decision,
) -> None:
    for codec in (msgspec.json, msgspec.msgpack):
        assert codec.decode(codec.encode(decision), type=Decision) == decision


def test_decision_result_of_refuses_a_mix_of_calls_and_replies() -> None:
    with pytest.raises(ValueError, match="CallTool"):
        DecisionResult.of([CallTool(name="t"), Reply(text="x")], model="m")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="CallTool"):
        DecisionResult.of([], model="m")
