"""The Redis store's writer: scripts sent by their SHA1, and again in full when Redis lost them."""

from __future__ import annotations

import anyio
import pytest
import redis.asyncio

from greenroom.store import RedisStore, VersionConflict
from tests._redis_server import redis_prefix, redis_url
from tests.store.conftest import COUNTERS

pytestmark = pytest.mark.anyio


async def test_writes_go_on_in_order_after_the_server_flushed_its_scripts() -> None:
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        async with RedisStore(client, prefix=redis_prefix()) as store:
            await store.write(COUNTERS, "c", 0)
            await client.script_flush()
            versions: list[int] = []

            async def write(n: int) -> None:
                versions.append((await store.write(COUNTERS, "c", n)).version)

            async with anyio.create_task_group() as tg:  # one batch, every script missing
                for n in range(1, 21):
                    tg.start_soon(write, n)
            assert versions == list(range(2, 22))
            with pytest.raises(VersionConflict):
                await store.write(COUNTERS, "c", 99, expected=1)
            record = await store.read(COUNTERS, "c")
            assert record is not None
            assert record.version == 21
    finally:
        await client.aclose()
