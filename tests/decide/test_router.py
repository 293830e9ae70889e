"""The fallback router: the primary first, the next model on every kind of failure, Retry-After
honoured within a bound, and which model answered recorded."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

from greenroom.decide import (
    AllModelsFailed,
    BudgetExceeded,
    Context,
    DeciderFailed,
    DecisionResult,
    FallbackRouter,
    InvalidDeciderConfig,
    ModelConfig,
    ModelUnavailable,
    NoRuleMatched,
    OpenAIClient,
    RateLimited,
    Reply,
    RulesDecider,
)
from greenroom.testing import (
    ScriptedError,
    ScriptedMalformed,
    ScriptedModelServer,
    ScriptedReply,
    ScriptItem,
)

from .conftest import CONTEXT

pytestmark = pytest.mark.anyio


@pytest.fixture
async def backup() -> AsyncIterator[ScriptedModelServer]:
    async with ScriptedModelServer() as running:
        yield running


def _client(
    server: ScriptedModelServer, name: str, *, stream: bool = False, timeout: float = 5.0
) -> OpenAIClient:
    # 5 s, so a loaded machine cannot time out a model that must answer; the
    # test of a slow primary passes 0.2 s, so that one times out quickly.
    config = ModelConfig(model=name, base_url=server.base_url, stream=stream, timeout=timeout)
    return OpenAIClient(config, api_key="sk-x")


FAILURES: list[tuple[str, ScriptItem, str]] = [
    ("server-error", ScriptedError(status=500), "greenroom.ModelUnavailable"),
    ("bad-gateway", ScriptedError(status=502), "greenroom.ModelUnavailable"),
    ("rate-limited", ScriptedError(status=429, retry_after=1), "greenroom.RateLimited"),
    ("slow-reply", ScriptedReply(content="late", delay=1.0), "greenroom.ModelTimeout"),
    ("malformed-json", ScriptedMalformed(), "greenroom.InvalidModelOutput"),
    (
        "truncated",
        ScriptedReply(content="cut short", truncate_after=2),
        "greenroom.ModelUnavailable",
    ),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("case", "item", "error_type"), FAILURES, ids=[f[0] for f in FAILURES])
async def test_router_answers_from_the_fallback_when_the_primary_fails(
    server: ScriptedModelServer,
    backup: ScriptedModelServer,
    stream: bool,
    case: str,
    item: ScriptItem,
    error_type: str,
) -> None:
    server.push(item)
    backup.reply("from the backup")
    async with (
        _client(server, "primary", stream=stream, timeout=0.2) as p,
        _client(backup, "backup", stream=stream) as b,
    ):
        result = await FallbackRouter([p, b]).decide(CONTEXT)
    assert result.model == "backup"
    assert result.final == Reply(text="from the backup")
    assert [(f.model, f.error.type) for f in result.failures] == [("primary", error_type)]
    assert len(server.requests) == 1  # the primary was asked once, not retried


async def test_router_uses_the_primary_when_it_answers(
    server: ScriptedModelServer, backup: ScriptedModelServer
) -> None:
    server.reply("from the primary")
    async with _client(server, "primary") as p, _client(backup, "backup") as b:
        result = await FallbackRouter([p, b]).decide(CONTEXT)
    assert (result.model, result.failures) == ("primary", ())
    assert backup.requests == []


async def test_router_tries_every_model_in_order_then_fails_with_all_attempts(
    server: ScriptedModelServer, backup: ScriptedModelServer
) -> None:
    server.fail(500)
    backup.malformed()
    async with _client(server, "primary") as p, _client(backup, "backup") as b:
        with pytest.raises(AllModelsFailed) as caught:
            await FallbackRouter([p, b], name="chat").decide(CONTEXT)
    error = caught.value
    assert [(m, i.type) for m, i in error.attempts] == [
        ("primary", "greenroom.ModelUnavailable"),
        ("backup", "greenroom.InvalidModelOutput"),
    ]
    assert error.model == "chat"
    assert type(error.__cause__).__name__ == "InvalidModelOutput"


async def test_rate_limited_model_is_skipped_until_its_retry_after_passes(
    server: ScriptedModelServer, backup: ScriptedModelServer
) -> None:
    now = [100.0]
    server.fail(429, retry_after=5)
    server.reply("primary again")
    backup.reply("backup 1")
    backup.reply("backup 2")
    async with _client(server, "primary") as p, _client(backup, "backup") as b:
        router = FallbackRouter([p, b], clock=lambda: now[0])
        first = await router.decide(CONTEXT)
        assert router.cooling_down() == {"primary": 5.0}
        now[0] += 4.0
        second = await router.decide(CONTEXT)
        now[0] += 1.0
        third = await router.decide(CONTEXT)
    assert [r.model for r in (first, second, third)] == ["backup", "backup", "primary"]
    assert second.failures[0].model == "primary"
    assert "cooling down" in second.failures[0].error.message
    assert len(server.requests) == 2  # not asked while cooling down


async def test_retry_after_is_honoured_only_up_to_max_retry_wait(
    server: ScriptedModelServer, backup: ScriptedModelServer
) -> None:
    now = [0.0]
    server.fail(429, retry_after=3600)
    backup.reply("backup")
    async with _client(server, "primary") as p, _client(backup, "backup") as b:
        router = FallbackRouter([p, b], max_retry_wait=2.0, clock=lambda: now[0])
        await router.decide(CONTEXT)
    assert router.cooling_down() == {"primary": 2.0}


async def test_when_every_model_cools_down_the_router_waits_for_the_first_ready(
    server: ScriptedModelServer,
) -> None:
    server.fail(429, retry_after=30)
    server.reply("after the wait")
    async with _client(server, "primary") as p:
        router = FallbackRouter([p], max_retry_wait=0.05)
        with pytest.raises(AllModelsFailed) as caught:
            await router.decide(CONTEXT)
        assert isinstance(caught.value.__cause__, RateLimited)
        started = time.monotonic()
        result = await router.decide(CONTEXT)
    assert result.final == Reply(text="after the wait")
    assert 0.03 <= time.monotonic() - started < 1.0


async def test_routers_nest_and_record_the_model_that_answered(
    server: ScriptedModelServer, backup: ScriptedModelServer
) -> None:
    server.fail(503)
    backup.fail(500)
    rules = RulesDecider([], default=Reply(text="canned"), name="rules")
    async with _client(server, "primary") as p, _client(backup, "backup") as b:
        inner = FallbackRouter([p, b], name="models")
        result = await FallbackRouter([inner, rules], name="outer").decide(CONTEXT)
    assert result.model == "rules"
    assert [f.model for f in result.failures] == ["models"]


class Broken:
    """A decider with a bug: it raises ``error``, or returns ``answer`` (not a DecisionResult)."""

    name = "broken"

    def __init__(self, error: BaseException | None = None, answer: object = None) -> None:
        self.error = error
        self.answer = answer

    async def decide(self, context: Context) -> DecisionResult:
        if self.error is not None:
            raise self.error
        return self.answer  # type: ignore[return-value]


BUGS: list[tuple[str, Broken, str]] = [
    ("key-error", Broken(KeyError("a bug")), "KeyError"),
    ("recursion-error", Broken(RecursionError("maximum recursion depth")), "RecursionError"),
    ("unicode-error", Broken(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates")), ""),
    ("not-a-result", Broken(answer=None), "TypeError"),
    ("usage-error", Broken(NoRuleMatched("rules", 0, "hi")), "NoRuleMatched"),
]


@pytest.mark.parametrize(("case", "broken", "error_type"), BUGS, ids=[b[0] for b in BUGS])
async def test_router_falls_back_when_a_decider_raises_something_not_a_model_error(
    case: str, broken: Broken, error_type: str
) -> None:
    rules = RulesDecider([], default=Reply(text="x"), name="rules")
    result = await FallbackRouter([broken, rules]).decide(CONTEXT)
    assert result.model == "rules"
    assert [(f.model, f.error.type) for f in result.failures] == [
        ("broken", "greenroom.DeciderFailed")
    ]
    assert error_type in result.failures[0].error.message


async def test_a_decider_bug_is_chained_under_all_models_failed() -> None:
    bug = KeyError("a bug")
    with pytest.raises(AllModelsFailed) as caught:
        await FallbackRouter([Broken(bug)]).decide(CONTEXT)
    failed = caught.value.__cause__
    assert isinstance(failed, DeciderFailed)
    assert failed.__cause__ is bug
    assert (failed.model, failed.error_type) == ("broken", "KeyError")


async def test_router_passes_budget_exceeded_through() -> None:
    rules = RulesDecider([], default=Reply(text="x"), name="rules")
    with pytest.raises(BudgetExceeded):
        await FallbackRouter([Broken(BudgetExceeded("max_tokens", 10, 5)), rules]).decide(CONTEXT)


async def test_router_never_catches_cancellation() -> None:
    entered = anyio.Event()

    class Hanging:
        name = "hanging"

        async def decide(self, context: Context) -> DecisionResult:
            entered.set()
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

    fallback = RulesDecider([], default=Reply(text="x"), name="rules")
    router = FallbackRouter([Hanging(), fallback])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(router.decide, CONTEXT)
            await entered.wait()
            tg.cancel_scope.cancel()
    assert tg.cancel_scope.cancelled_caught


async def test_a_rate_limit_with_a_nan_wait_sets_no_cool_down() -> None:
    limited = RateLimited("primary", 1.0)
    limited.retry_after = float("nan")  # a decider of the user's own may set anything

    class Limited:
        name = "primary"

        async def decide(self, context: Context) -> DecisionResult:
            raise limited

    fallback = RulesDecider([], default=Reply(text="x"), name="rules")
    router = FallbackRouter([Limited(), fallback])
    await router.decide(CONTEXT)
    assert router.cooling_down() == {}
    assert router._cooling_until == {}


@pytest.mark.parametrize("header", ["nan", "inf", "-inf", "-5", "1e309", "soon", "NaN"])
async def test_an_invalid_retry_after_header_counts_as_absent(
    server: ScriptedModelServer, backup: ScriptedModelServer, header: str
) -> None:
    server.push(ScriptedError(status=429, headers={"Retry-After": header}))
    server.reply("primary again")
    backup.reply("backup")
    async with _client(server, "primary") as p, _client(backup, "backup") as b:
        router = FallbackRouter([p, b])
        first = await router.decide(CONTEXT)
        assert router.cooling_down() == {}
        second = await router.decide(CONTEXT)
    assert (first.model, second.model) == ("backup", "primary")
    assert first.failures[0].error.type == "greenroom.RateLimited"


def test_router_refuses_no_deciders_and_repeated_names() -> None:
    rules = RulesDecider([], default=Reply(text="x"))
    with pytest.raises(InvalidDeciderConfig, match="no deciders"):
        FallbackRouter([])
    with pytest.raises(InvalidDeciderConfig, match="repeat"):
        FallbackRouter([rules, rules])


def test_model_unavailable_keeps_status_and_reason_as_attributes() -> None:
    error = ModelUnavailable("m", "the server answered: boom", 503)
    assert (error.model, error.status, error.reason) == ("m", 503, "the server answered: boom")
    assert error.to_info().type == "greenroom.ModelUnavailable"
