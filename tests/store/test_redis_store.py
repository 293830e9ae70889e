"""What only the Redis store does: shared records, its key layout, errors at the boundary."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio

from greenroom import UsageError
from greenroom.store import (
    RedisStore,
    StateChanged,
    StoreUnavailable,
    VersionConflict,
    WatchGap,
)
from tests._redis_server import free_port, redis_prefix, redis_url
from tests.store.conftest import COUNTERS, PREFS, Prefs

pytestmark = pytest.mark.anyio


async def test_two_stores_on_one_prefix_share_records_and_compare_and_set() -> None:
    prefix = redis_prefix()
    async with (
        RedisStore(redis_url(), prefix=prefix) as a,
        RedisStore(redis_url(), prefix=prefix) as b,
    ):
        await a.write(PREFS, "ada", Prefs("en"))
        record = await b.read(PREFS, "ada")
        assert record is not None
        assert record.version == 1
        await b.write(PREFS, "ada", Prefs("fr"), expected=1)
        with pytest.raises(VersionConflict) as caught:
            await a.write(PREFS, "ada", Prefs("de"), expected=1)
        assert (caught.value.expected, caught.value.current) == (1, 2)
        assert [key for key, _ in await a.scan(PREFS)] == ["ada"]


async def test_without_a_change_log_a_version_written_by_another_store_shows_as_a_gap() -> None:
    prefix = redis_prefix()
    async with (
        RedisStore(redis_url(), prefix=prefix, change_log=0) as a,
        RedisStore(redis_url(), prefix=prefix, change_log=0) as b,
    ):
        got: list[StateChanged | WatchGap] = []
        await b.watch(COUNTERS, key="c", sink=got.append)
        await a.write(COUNTERS, "c", 1)
        await b.write(COUNTERS, "c", 2)
        assert got[0] == WatchGap(scope="counters", key="c", reason="version_skipped")
        assert isinstance(got[1], StateChanged)
        assert got[1].version == 2


async def test_every_key_starts_with_the_prefix_and_a_scope_shares_one_hash_tag() -> None:
    prefix = redis_prefix()
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        async with RedisStore(client, prefix=prefix) as store:
            await store.write(COUNTERS, "k", 1)
            await store.delete(COUNTERS, "k")
        keys = sorted(await client.keys(prefix.encode() + b"*"))
        assert keys == [  # the empty live index is gone
            prefix.encode() + b"{counters}:changes",
            prefix.encode() + b"{counters}:r:k",
        ]
        assert await client.ping()  # a client passed in stays open
    finally:
        await client.aclose()


async def test_an_unreachable_server_raises_store_unavailable_from_the_redis_error() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix())
    with pytest.raises(StoreUnavailable) as caught:
        await store.__aenter__()
    assert isinstance(caught.value.__cause__, redis.RedisError)
    with pytest.raises(StoreUnavailable) as caught:
        await store.write(COUNTERS, "k", 1)
    assert isinstance(caught.value.__cause__, redis.RedisError)
    with pytest.raises(StoreUnavailable):
        await store.read(COUNTERS, "k")
    await store.aclose()


async def test_a_client_that_decodes_responses_or_a_prefix_with_braces_is_refused() -> None:
    client = redis.asyncio.Redis.from_url(redis_url(), decode_responses=True)
    try:
        with pytest.raises(UsageError, match="decode_responses"):
            RedisStore(client)
    finally:
        await client.aclose()
    with pytest.raises(UsageError, match="braces"):
        RedisStore(redis_url(), prefix="a{b}:")
