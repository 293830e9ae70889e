"""RedisStore across a Redis restart: StoreUnavailable while down, working again after."""

from __future__ import annotations

import anyio
import pytest
import redis

from greenroom.store import RedisStore, Scope, StoreUnavailable
from tests._redis_server import OwnedRedis, redis_prefix

pytestmark = pytest.mark.anyio

NOTES: Scope[str] = Scope("notes", str, owner="test")


async def test_a_killed_redis_is_store_unavailable_at_once_and_the_store_works_after_restart() -> (
    None
):
    with OwnedRedis() as server:
        async with RedisStore(server.url, prefix=redis_prefix()) as store:
            await store.write(NOTES, "k", "before")
            server.kill()
            with anyio.fail_after(1):
                with pytest.raises(StoreUnavailable) as caught:
                    await store.write(NOTES, "k", "during")
                assert isinstance(caught.value.__cause__, redis.RedisError)
                with pytest.raises(StoreUnavailable):
                    await store.read(NOTES, "k")
            await anyio.to_thread.run_sync(server.restart)
            record = await store.read(NOTES, "k")  # appendfsync always: the write survived
            assert record is not None
            assert (record.value, record.version) == ("before", 1)
            written = await store.write(NOTES, "k", "after", expected=1)
            assert written.version == 2
