"""Hypothesis properties of every backend: CAS, watch order, freshness."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenroom.store import (
    ReadEntry,
    StateChanged,
    Store,
    VersionConflict,
    Versioned,
    WatchGap,
)
from tests.store.conftest import COUNTERS, make_factory

pytestmark = pytest.mark.anyio

PROPERTY = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
KEYS = st.sampled_from(["a", "b", "c"])


@asynccontextmanager
async def fresh_store(backend: str) -> AsyncIterator[Store]:
    """A new, empty store of ``backend`` for one hypothesis example."""
    with tempfile.TemporaryDirectory() as directory:
        async with make_factory(backend, Path(directory))() as store:
            yield store


@PROPERTY
@given(
    writers=st.lists(
        st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=4),
        min_size=2,
        max_size=5,
    )
)
async def test_concurrent_cas_writers_never_lose_an_update(
    backend: str, writers: list[list[int]]
) -> None:
    """Each writer increments the value it read: a lost update would leave the count short.

    Final version = final value = successful writes; every failed CAS raised
    VersionConflict carrying a newer version than the writer had read.
    """
    async with fresh_store(backend) as store:
        written: list[tuple[int, int]] = []
        conflicts: list[tuple[int, int]] = []

        async def writer(pauses: list[int]) -> None:
            for pause in pauses:
                record = await store.read(COUNTERS, "c")
                seen = 0 if record is None else record.version
                count = 0 if record is None else record.value
                for _ in range(pause):
                    await anyio.lowlevel.checkpoint()
                try:
                    result = await store.write(COUNTERS, "c", count + 1, expected=seen)
                except VersionConflict as error:
                    conflicts.append((seen, error.current))
                else:
                    written.append((result.version, result.value))

        async with anyio.create_task_group() as tg:
            for pauses in writers:
                tg.start_soon(writer, pauses)

        final = await store.read(COUNTERS, "c")
        assert isinstance(final, Versioned)
        assert final.version == final.value == len(written)
        assert sorted(written) == [(n, n) for n in range(1, len(written) + 1)]
        assert len(written) + len(conflicts) == sum(len(p) for p in writers)
        assert all(current > seen for seen, current in conflicts)


Op = tuple[str, str]
OPS = st.tuples(st.sampled_from(["write", "write", "delete"]), KEYS)


def check_order(messages: list[StateChanged | WatchGap], finals: dict[str, int]) -> None:
    """Per key: versions rise; a skipped version has a WatchGap before it; the last is seen."""
    last: dict[str, int] = {}
    gap_since: set[str] = set()  # keys with a gap delivered after their last change
    for message in messages:
        if isinstance(message, WatchGap):
            gap_since |= set(finals) if message.key is None else {message.key}
            continue
        previous = last.get(message.key, 0)
        assert message.version > previous, (message, previous)
        if message.version != previous + 1:
            assert message.key in gap_since, f"version {message.version} skipped without a gap"
        last[message.key] = message.version
        gap_since.discard(message.key)
    for key, version in finals.items():
        if version:
            assert last.get(key) == version or key in gap_since, (key, version, last)


@PROPERTY
@given(
    rounds=st.lists(st.lists(OPS, min_size=1, max_size=4), min_size=1, max_size=6),
    refusals=st.lists(st.booleans(), max_size=12),
)
async def test_a_watcher_sees_every_version_in_order_or_a_watch_gap(
    backend: str, rounds: list[list[Op]], refusals: list[bool]
) -> None:
    async with fresh_store(backend) as store:
        accepting = False
        got: dict[str, list[StateChanged | WatchGap]] = {"prefix": [], "key": []}
        gap_taken = anyio.Event()

        def make_sink(name: str) -> object:
            def sink(message: StateChanged | WatchGap) -> None:
                nonlocal gap_taken
                if not accepting and refusals and refusals.pop():
                    raise RuntimeError("mailbox full")
                got[name].append(message)
                if isinstance(message, WatchGap):
                    gap_taken.set()

            return sink

        watches = {
            "prefix": await store.watch(COUNTERS, prefix="", sink=make_sink("prefix")),  # type: ignore[arg-type]
            "key": await store.watch(COUNTERS, key="a", sink=make_sink("key")),  # type: ignore[arg-type]
        }

        async def apply(op: Op) -> None:
            kind, key = op
            if kind == "write":
                await store.write(COUNTERS, key, 1)
            else:
                await store.delete(COUNTERS, key)

        for ops in rounds:
            async with anyio.create_task_group() as tg:
                for op in ops:
                    tg.start_soon(apply, op)
        accepting = True
        for watch in watches.values():
            while watch.owes_gap:
                gap_taken = anyio.Event()
                with anyio.fail_after(5):
                    await gap_taken.wait()

        finals = {}
        for key in ("a", "b", "c"):
            record = await store.read(COUNTERS, key)
            finals[key] = 0 if record is None else record.version
        check_order(got["prefix"], finals)
        check_order(got["key"], {"a": finals["a"]})
        assert all(m.key == "a" for m in got["key"] if isinstance(m, StateChanged))


STEPS = st.lists(st.tuples(st.sampled_from(["read", "read", "write", "delete"]), KEYS), max_size=25)


@PROPERTY
@given(steps=STEPS)
async def test_check_fresh_reports_a_read_stale_iff_its_key_was_written_after(
    backend: str, steps: list[Op]
) -> None:
    async with fresh_store(backend) as store:
        reads: list[ReadEntry] = []
        written_after: list[bool] = []
        live = {"a": False, "b": False, "c": False}
        for kind, key in steps:
            if kind == "read":
                record = await store.read(COUNTERS, key)
                reads.append(ReadEntry("counters", key, 0 if record is None else record.version))
                written_after.append(False)
                continue
            if kind == "write":
                await store.write(COUNTERS, key, 1)
                live[key] = True
            else:
                changed = await store.delete(COUNTERS, key) is not None
                assert changed == live[key]
                live[key] = False
                if not changed:
                    continue
            for index, entry in enumerate(reads):
                if entry.key == key:
                    written_after[index] = True
        stale = await store.check_fresh(reads)
        assert stale == tuple(e for e, after in zip(reads, written_after, strict=True) if after)
