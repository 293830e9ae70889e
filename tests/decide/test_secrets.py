"""The API key never appears in a log line or in the text of an exception, through every
success and every failure the client can meet."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from loguru import logger

from greenroom.decide import (
    FallbackRouter,
    ModelConfig,
    ModelError,
    OpenAIClient,
)
from greenroom.testing import (
    ScriptedError,
    ScriptedMalformed,
    ScriptedModelServer,
    ScriptedReply,
    ScriptedToolCall,
    ScriptItem,
)

from .conftest import CONTEXT, Weather

pytestmark = pytest.mark.anyio

KEY = "sk-planted-0123456789abcdef"


@pytest.fixture
def logs() -> Iterator[list[str]]:
    records: list[str] = []
    sink = logger.add(
        lambda m: records.append(str(m) + repr(m.record)),
        level="TRACE",
        format="{time} {level} {name} {message} {extra} {exception}",
        backtrace=True,
        diagnose=True,
    )
    logger.enable("greenroom")
    try:
        yield records
    finally:
        logger.disable("greenroom")
        logger.remove(sink)


def _texts(error: BaseException | None) -> Iterator[str]:
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield str(error)
        yield repr(error)
        yield from (repr(v) for v in vars(error).values())
        error = error.__cause__ or error.__context__


ECHO = f"invalid key {KEY} for Authorization: Bearer {KEY}"
ITEMS: list[ScriptItem] = [
    ScriptedReply(content="hello"),
    ScriptedReply(tool_calls=(ScriptedToolCall(name="get_weather", arguments={"city": "Paris"}),)),
    ScriptedReply(
        tool_calls=(ScriptedToolCall(name="get_weather", arguments=f'{{"city": "{KEY}'),)
    ),
    ScriptedReply(tool_calls=(ScriptedToolCall(name="nope", arguments={"k": KEY}),)),
    ScriptedReply(content=f"the key is {KEY}", finish_reason="length"),
    ScriptedError(status=401, message=ECHO),
    ScriptedError(status=500, message=ECHO),
    ScriptedError(status=429, message=ECHO, retry_after=1),
    ScriptedMalformed(body=f'{{"echo": "{KEY}", '),
    ScriptedReply(content=f"cut {KEY}", truncate_after=2),
    ScriptedReply(content="slow", delay=0.3),
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_api_key_never_appears_in_logs_or_exceptions(
    server: ScriptedModelServer, logs: list[str], stream: bool
) -> None:
    server.push(*ITEMS)
    config = ModelConfig(model="m", base_url=server.base_url, stream=stream, timeout=0.1)
    errors: list[BaseException] = []
    results = []
    async with OpenAIClient(config, api_key=KEY, argument_types={"get_weather": Weather}) as c:
        for _ in ITEMS:
            try:
                results.append(await c.decide(CONTEXT))
            except ModelError as e:
                errors.append(e)
        assert KEY not in repr(c)
        server.fail(500)
        try:
            await FallbackRouter([c]).decide(CONTEXT)
        except ModelError as e:
            errors.append(e)
    assert len(results) == 2
    assert len(errors) == len(ITEMS) - 2 + 1
    assert all(r.headers.get("authorization") == f"Bearer {KEY}" for r in server.requests)
    assert logs, "the client logged nothing: the test would prove nothing"
    leaks = [line for line in logs if KEY in line]
    leaks += [text for e in errors for text in _texts(e) if KEY in text]
    assert leaks == []
    assert any("[redacted]" in text for e in errors for text in _texts(e))


async def test_api_key_from_the_environment_is_not_in_the_clients_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    client = OpenAIClient(ModelConfig(model="m"))
    assert KEY not in repr(client)
    assert KEY not in repr(vars(client))
    assert KEY not in repr(client.config)
