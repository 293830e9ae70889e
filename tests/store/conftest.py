"""Fixtures of the store tests: every behavioural test runs against every backend."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import msgspec
import pytest

from greenroom.store import MemoryStore, RedisStore, Scope, SqliteStore, Store
from tests._redis_server import redis_prefix, redis_url

BACKENDS = ("memory", "sqlite", "redis")


class Prefs(msgspec.Struct, frozen=True):
    """A user's preferences: the value type of the test scopes."""

    language: str
    tone: str = "plain"


class Writer:
    """An actor class (stands in for an Actor subclass) that owns PREFS."""


class Reader:
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


@pytest.fixture(autouse=True)
def _fresh_store_on_redis(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Route a test module's ``fresh_store(backend)`` (the properties) to Redis for "redis".

    Those tests build one store per hypothesis example through that helper,
    which knows memory and sqlite only.
    """
    original = getattr(request.module, "fresh_store", None)
    if original is None:
        return

    @asynccontextmanager
    async def fresh_store(backend: str) -> AsyncIterator[Store]:
        if backend != "redis":
            async with original(backend) as store:
                yield store
            return
        with tempfile.TemporaryDirectory() as directory:
            async with make_factory(backend, Path(directory))() as store:
                yield store

    monkeypatch.setattr(request.module, "fresh_store", fresh_store)
