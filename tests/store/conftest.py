"""Fixtures of the store tests: every behavioural test runs against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import msgspec
import pytest

from greenroom.actors import Actor
from greenroom.store import MemoryStore, RedisStore, Scope, SqliteStore, Store
from tests._redis_server import redis_prefix, redis_url

BACKENDS = ("memory", "sqlite", "redis")


class Prefs(msgspec.Struct, frozen=True):
    """A user's preferences: the value type of the test scopes."""

    language: str
    tone: str = "plain"


class Writer(Actor):
    """An actor class that owns PREFS."""


class Reader(Actor):
    """An actor class that reads PREFS."""


PREFS: Scope[Prefs] = Scope("prefs", Prefs, owner=Writer, readers=[Reader, "auditor"])
COUNTERS: Scope[int] = Scope("counters", int, owner="counter")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


StoreFactory = Callable[[], AbstractAsyncContextManager[Store]]


def make_factory(backend: str, directory: Path) -> StoreFactory:
    """A factory of fresh stores of ``backend``; sqlite files go under ``directory``."""
    count = 0

    def factory() -> AbstractAsyncContextManager[Store]:
        nonlocal count
        count += 1
        if backend == "memory":
            return MemoryStore()
        if backend == "redis":  # one server per session, a fresh prefix per store
            return RedisStore(redis_url(), prefix=redis_prefix())
        return SqliteStore(directory / f"store-{count}.db")

    return factory


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    async with make_factory(backend, tmp_path)() as opened:
        yield opened
