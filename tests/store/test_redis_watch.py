"""Watches on RedisStore see the writes of every store on the prefix, in order, or a gap."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest
import redis.asyncio

from greenroom.store import RedisStore, Scope, StateChanged, WatchGap
from tests._redis_server import redis_prefix, redis_url
from tests.store.conftest import COUNTERS, PREFS, Prefs
from tests.store.test_properties import check_order

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]

Message = StateChanged | WatchGap

WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    from greenroom.store import RedisStore
    from tests.store.conftest import COUNTERS

    async def main(url: str, prefix: str, count: int, change_log: int) -> None:
        async with RedisStore(url, prefix=prefix, change_log=change_log) as store:
            for n in range(1, count + 1):
                await store.write(COUNTERS, "c", n, writer="elsewhere")

    anyio.run(main, sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    """
)


def writer_command(prefix: str, count: int, change_log: int = 10_000) -> list[str]:
    return [sys.executable, "-c", WRITER_SCRIPT, redis_url(), prefix, str(count), str(change_log)]


class Collector:
    """A sink that keeps every message and lets a test wait for a condition on them."""

    def __init__(self) -> None:
        self.got: list[Message] = []
        self._changed = anyio.Event()

    def __call__(self, message: Message) -> None:
        self.got.append(message)
        self._changed.set()

    async def wait_for(self, done: Callable[[list[Message]], bool], timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while not done(self.got):
                self._changed = anyio.Event()
                await self._changed.wait()

    def versions(self, key: str) -> list[int]:
        return [m.version for m in self.got if isinstance(m, StateChanged) and m.key == key]

    def gaps(self) -> list[WatchGap]:
        return [m for m in self.got if isinstance(m, WatchGap)]


def reached(key: str, version: int) -> Callable[[list[Message]], bool]:
    return lambda got: any(
        isinstance(m, StateChanged) and m.key == key and m.version >= version for m in got
    )


async def test_a_watch_sees_the_writes_of_another_store_on_the_prefix_in_order() -> None:
    prefix = redis_prefix()
    async with (
        RedisStore(redis_url(), prefix=prefix) as a,
        RedisStore(redis_url(), prefix=prefix) as b,
    ):
        on_key, on_prefix = Collector(), Collector()
        await b.watch(PREFS, key="ada", sink=on_key)
        await b.watch(PREFS, prefix="", sink=on_prefix)
        await a.write(PREFS, "ada", Prefs("en"), writer="w", trace_id="t")
        await a.write(PREFS, "bob", Prefs("de"))
        await a.write(PREFS, "ada", Prefs("fr"))
        await a.delete(PREFS, "ada")
        await on_prefix.wait_for(reached("ada", 3))
        await on_key.wait_for(reached("ada", 3))
        changes = [m for m in on_prefix.got if isinstance(m, StateChanged)]
        assert [(m.key, m.version, m.deleted) for m in changes] == [
            ("ada", 1, False),
            ("bob", 1, False),
            ("ada", 2, False),
            ("ada", 3, True),
        ]
        assert on_key.versions("ada") == [1, 2, 3]
        assert on_key.gaps() == on_prefix.gaps() == []
        first = on_key.got[0]
        assert isinstance(first, StateChanged)
        assert (first.value, first.updated_by, first.trace_id) == (Prefs("en"), "w", "t")


async def test_two_stores_writing_one_key_reach_a_watch_in_version_order_without_gaps() -> None:
    prefix = redis_prefix()
    async with (
        RedisStore(redis_url(), prefix=prefix) as a,
        RedisStore(redis_url(), prefix=prefix) as b,
    ):
        seen = Collector()
        await b.watch(COUNTERS, prefix="", sink=seen)

        async def write_many(store: RedisStore) -> None:
            for n in range(50):
                await store.write(COUNTERS, "c", n)

        async with anyio.create_task_group() as tg:
            for store in (a, b, a, b):
                tg.start_soon(write_many, store)
        await seen.wait_for(reached("c", 200))
        assert seen.versions("c") == list(range(1, 201))
        assert seen.gaps() == []


async def test_a_write_of_this_store_reaches_its_watch_before_the_write_returns() -> None:
    prefix = redis_prefix()
    async with (
        RedisStore(redis_url(), prefix=prefix) as a,
        RedisStore(redis_url(), prefix=prefix) as b,
    ):
        seen = Collector()
        await b.watch(COUNTERS, key="c", sink=seen)
        for n in range(1, 21):
            await (a if n % 3 else b).write(COUNTERS, "c", n)
            if n % 3 == 0:  # b's own write: delivered, after a's earlier ones, when it returns
                assert seen.versions("c") == list(range(1, n + 1))


@pytest.mark.slow
async def test_a_watch_sees_the_writes_of_another_process() -> None:
    prefix = redis_prefix()
    async with RedisStore(redis_url(), prefix=prefix) as store:
        seen = Collector()
        await store.watch(COUNTERS, key="c", sink=seen)
        with anyio.fail_after(60):
            done = await anyio.run_process(writer_command(prefix, 30), cwd=ROOT, check=False)
        assert done.returncode == 0, done.stderr.decode()
        await seen.wait_for(reached("c", 30))
        assert seen.versions("c") == list(range(1, 31))
        assert seen.gaps() == []
        last = seen.got[-1]
        assert isinstance(last, StateChanged)
        assert (last.value, last.updated_by) == (30, "elsewhere")


@pytest.mark.slow
async def test_changes_trimmed_from_the_log_before_the_reader_got_them_make_a_gap() -> None:
    prefix = redis_prefix()
    async with RedisStore(redis_url(), prefix=prefix) as store:
        on_key, on_prefix = Collector(), Collector()
        await store.watch(COUNTERS, key="c", sink=on_key)
        await store.watch(COUNTERS, prefix="", sink=on_prefix)
        # Run the writer synchronously: this event loop, and so the store's
        # reader, stands still while the other process writes 300 versions
        # into a log capped near 10 entries, so most are trimmed unread.
        done = subprocess.run(  # noqa: ASYNC221 - blocking on purpose, see above
            writer_command(prefix, 300, change_log=10), cwd=ROOT, capture_output=True, timeout=60
        )
        assert done.returncode == 0, done.stderr.decode()
        for seen in (on_key, on_prefix):
            await seen.wait_for(reached("c", 300))
            check_order(seen.got, {"c": 300})  # rising; every skipped version after a gap
            assert len(seen.versions("c")) < 300
        assert on_key.gaps()[0] == WatchGap(scope="counters", key="c", reason="version_skipped")
        assert on_prefix.gaps()[0] == WatchGap(
            scope="counters", prefix="", reason="version_skipped"
        )


async def test_a_watch_on_a_new_scope_is_read_at_once_while_the_reader_blocks() -> None:
    prefix = redis_prefix()
    async with (
        RedisStore(redis_url(), prefix=prefix) as a,
        RedisStore(redis_url(), prefix=prefix) as b,
    ):
        await b.watch(PREFS, key="ada", sink=lambda m: None)  # the reader blocks on this log
        seen = Collector()
        await b.watch(COUNTERS, key="c", sink=seen)
        await a.write(COUNTERS, "c", 1)
        # Well inside the reader's 2 s block: it was woken to read the new log.
        await seen.wait_for(reached("c", 1), timeout=1.5)


async def test_closing_a_store_stops_its_reader_at_once_and_leaves_no_wake_key() -> None:
    prefix = redis_prefix()
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        store = RedisStore(client, prefix=prefix)
        await store.__aenter__()
        await store.watch(PREFS, key="ada", sink=lambda m: None)
        await store.watch(COUNTERS, key="c", sink=lambda m: None)
        with anyio.fail_after(1.5):
            await store.aclose()
        assert await client.keys(f"{prefix}wake:*") == []
    finally:
        await client.aclose()


async def test_a_change_the_watchers_scope_type_refuses_is_a_gap_for_its_key() -> None:
    prefix = redis_prefix()
    words: Scope[str] = Scope("counters", str, owner="counter")
    async with (
        RedisStore(redis_url(), prefix=prefix) as a,
        RedisStore(redis_url(), prefix=prefix) as b,
    ):
        seen = Collector()
        await b.watch(COUNTERS, key="c", sink=seen)
        await a.write(words, "c", "not an int")
        await a.write(COUNTERS, "c", 2)
        await seen.wait_for(reached("c", 2))
        assert seen.got[0] == WatchGap(scope="counters", key="c", reason="version_skipped")
        assert seen.versions("c") == [2]


async def test_a_negative_change_log_is_a_usage_error() -> None:
    from greenroom import UsageError

    with pytest.raises(UsageError, match="change_log"):
        RedisStore(redis_url(), change_log=-1)
