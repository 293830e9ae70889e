"""Fuzz: hostile answers from a real loopback server give a result or a ModelError, never another
exception, and the client (or a router) keeps serving the good answer that follows."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from greenroom import GreenroomError
from greenroom.decide import (
    Context,
    DecisionResult,
    FallbackRouter,
    InvalidModelOutput,
    ModelConfig,
    ModelError,
    OpenAIClient,
    RateLimited,
    Reply,
    RulesDecider,
)
from greenroom.decide._errors import RAW_KEPT
from greenroom.decide._retry_after import MAX_RETRY_AFTER
from tests._fuzz import FUZZ_SETTINGS, record

from ._hostile import GOOD_BODY, Answer, hostile_answers
from ._raw_server import RawServer, response
from .conftest import CONTEXT

pytestmark = pytest.mark.anyio

GOOD = response(body=GOOD_BODY)


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    async with RawServer() as server:
        yield server


@pytest.fixture
async def client(raw_server: RawServer) -> AsyncIterator[OpenAIClient]:
    """One client for every example of a test: the HTTP client is not rebuilt each time."""
    config = ModelConfig(model="primary", base_url=raw_server.base_url, timeout=5.0)
    async with OpenAIClient(config, api_key="sk-never-sent-back") as made:
        yield made


def _check_raw(error: InvalidModelOutput, answer: Answer) -> None:
    """The raw text received is on the error, bounded."""
    assert isinstance(error.raw, str)
    assert len(error.raw) <= RAW_KEPT
    assert error.raw_length >= len(error.raw)
    body = answer.raw.split(b"\r\n\r\n", 1)[1].decode("utf-8", errors="replace")
    if error.path == "$" and not answer.stream and "max_response_bytes" not in error.reason:
        assert error.raw == body[:RAW_KEPT]


@FUZZ_SETTINGS
@given(answer=hostile_answers())
async def test_any_answer_is_a_result_or_a_model_error(
    raw_server: RawServer, client: OpenAIClient, answer: Answer
) -> None:
    raw_server.answer(answer.raw, GOOD)
    try:
        result = await client.decide(CONTEXT)
    except ModelError as error:
        record("model-responses", "typed")
        if isinstance(error, InvalidModelOutput):
            _check_raw(error, answer)
    except Exception:
        record("model-responses", "escaped")
        raise
    else:
        record("model-responses", "accepted")
        assert isinstance(result, DecisionResult)
        assert result.decisions
    after = await client.decide(CONTEXT)  # the good answer next to it is not lost
    assert after.final == Reply(text="fine")


class _Buggy:
    """A primary whose bug is one exception (or a wrong answer)."""

    name = "primary"

    def __init__(self, bug: BaseException | None, answer: object) -> None:
        self.bug = bug
        self.answer = answer

    async def decide(self, context: Context) -> DecisionResult:
        if self.bug is not None:
            raise self.bug
        return self.answer  # type: ignore[return-value]


class _Custom(Exception):
    def __str__(self) -> str:
        raise RuntimeError("a __str__ that raises")


BUGS = st.sampled_from(
    [
        RecursionError("maximum recursion depth exceeded"),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        ValueError("bad"),
        TypeError("unhashable type: 'list'"),
        OverflowError("int too large"),
        KeyError("choices"),
        MemoryError(),
        ZeroDivisionError("division by zero"),
        ExceptionGroup("several", [ValueError("a"), KeyError("b")]),
        GreenroomError("a greenroom error that is not a ModelError"),
        RateLimited("primary", float("nan")),
        _Custom(),
        None,
    ]
)
ANSWERS = st.sampled_from([None, "text", 42, Reply(text="not a result"), object()])


MAX_WAIT = 30.0


def _assert_cool_downs_are_bounded(router: FallbackRouter) -> None:
    for left in router.cooling_down().values():
        assert math.isfinite(left)
        assert 0 < left <= min(MAX_WAIT, MAX_RETRY_AFTER)


@FUZZ_SETTINGS
@given(
    source=st.sampled_from(["server", "server", "bug"]),
    answer=hostile_answers(),
    bug=BUGS,
    wrong=ANSWERS,
)
async def test_the_router_falls_back_to_the_rules_on_every_primary_failure(
    raw_server: RawServer,
    client: OpenAIClient,
    source: str,
    answer: Answer,
    bug: BaseException | None,
    wrong: object,
) -> None:
    rules = RulesDecider([], default=Reply(text="from the rules"), name="rules")
    if source == "server":
        raw_server.answer(answer.raw)
    primary = client if source == "server" else _Buggy(bug, wrong)
    router = FallbackRouter([primary, rules], max_retry_wait=MAX_WAIT)
    try:
        result = await router.decide(CONTEXT)
    except Exception:
        record("fallback-router", "escaped")
        raise
    if source == "bug" or result.model == "rules":
        record("fallback-router", "typed")
        assert result.model == "rules"
        assert result.final == Reply(text="from the rules")
        [failure] = result.failures
        assert failure.model == "primary"
        assert failure.error.type.startswith("greenroom.")
    else:
        record("fallback-router", "accepted")
        assert result.model == "primary"
    _assert_cool_downs_are_bounded(router)
