"""Fixtures of the tool tests: local HTTP servers on 127.0.0.1 and a log capture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from loguru import logger

from tests.tools._server import LocalServer, serving


@pytest.fixture
async def server() -> AsyncIterator[LocalServer]:
    """A server on an allowed host."""
    async with serving() as s:
        yield s


@pytest.fixture
async def elsewhere() -> AsyncIterator[LocalServer]:
    """A second server, on a port no test allows."""
    async with serving() as s:
        yield s


@pytest.fixture
def logged() -> Iterator[list[dict[str, object]]]:
    """The extra fields of every greenroom log record (INFO and up) while the test runs."""
    records: list[dict[str, object]] = []
    logger.enable("greenroom")
    sink_id = logger.add(
        lambda m: records.append({**m.record["extra"], "level": m.record["level"].name}),
        level="INFO",
    )
    yield records
    logger.remove(sink_id)
    logger.disable("greenroom")
