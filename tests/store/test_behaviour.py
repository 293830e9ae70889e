"""The behavioural suite of the Store protocol, run against every backend."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from greenroom._errors import UsageError
from greenroom.mailbox._message import Message
from greenroom.store import (
    InvalidKey,
    InvalidValue,
    ReadEntry,
    Scope,
    StateChanged,
    Store,
    StoreClosed,
    StoredValueInvalid,
    Tombstone,
    VersionConflict,
    Versioned,
    WatchGap,
)
from tests.store.conftest import COUNTERS, PREFS, Prefs

pytestmark = pytest.mark.anyio


class PrefsV2(msgspec.Struct, frozen=True):
    """Prefs as a later release might change it: a new field without a default."""

    language: str
    region: str


async def test_first_write_is_version_one_with_writer_and_trace(store: Store) -> None:
    record = await store.write(PREFS, "ada", Prefs("en"), writer="w1", trace_id="t1")
    assert (record.version, record.value, record.updated_by, record.trace_id) == (
        1,
        Prefs("en"),
        "w1",
        "t1",
    )
    read = await store.read(PREFS, "ada")
    assert read == record


async def test_each_write_increments_the_version(store: Store) -> None:
    versions = [(await store.write(COUNTERS, "c", n)).version for n in range(5)]
    assert versions == [1, 2, 3, 4, 5]
    record = await store.read(COUNTERS, "c")
    assert isinstance(record, Versioned)
    assert (record.value, record.version) == (4, 5)


async def test_read_of_never_written_key_is_none(store: Store) -> None:
    assert await store.read(PREFS, "nobody") is None


async def test_same_key_in_two_scopes_is_two_records(store: Store) -> None:
    await store.write(PREFS, "k", Prefs("en"))
    await store.write(COUNTERS, "k", 7)
    await store.write(COUNTERS, "k", 8)
    prefs, counter = await store.read(PREFS, "k"), await store.read(COUNTERS, "k")
    assert isinstance(prefs, Versioned)
    assert prefs.version == 1
    assert isinstance(counter, Versioned)
    assert counter.version == 2


async def test_cas_with_current_version_writes_the_next_version(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    record = await store.write(PREFS, "ada", Prefs("fr"), expected=1)
    assert (record.version, record.value) == (2, Prefs("fr"))


async def test_cas_with_stale_version_raises_version_conflict(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    await store.write(PREFS, "ada", Prefs("fr"))
    with pytest.raises(VersionConflict) as caught:
        await store.write(PREFS, "ada", Prefs("de"), expected=1)
    error = caught.value
    assert (error.scope, error.key, error.expected, error.current) == ("prefs", "ada", 1, 2)
    assert "expected version 1" in str(error)
    assert "found version 2" in str(error)
    record = await store.read(PREFS, "ada")
    assert isinstance(record, Versioned)
    assert record.value == Prefs("fr")


async def test_cas_with_expected_zero_writes_only_if_the_key_does_not_exist(store: Store) -> None:
    assert (await store.write(PREFS, "ada", Prefs("en"), expected=0)).version == 1
    with pytest.raises(VersionConflict) as caught:
        await store.write(PREFS, "ada", Prefs("fr"), expected=0)
    assert caught.value.current == 1


async def test_delete_writes_a_versioned_tombstone(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    tombstone = await store.delete(PREFS, "ada", writer="w1", trace_id="t9")
    assert isinstance(tombstone, Tombstone)
    assert (tombstone.version, tombstone.updated_by, tombstone.trace_id) == (2, "w1", "t9")
    assert await store.read(PREFS, "ada") == tombstone


async def test_delete_of_a_key_that_is_not_live_writes_nothing(store: Store) -> None:
    assert await store.delete(PREFS, "nobody") is None
    assert await store.read(PREFS, "nobody") is None
    await store.write(PREFS, "ada", Prefs("en"))
    await store.delete(PREFS, "ada")
    assert await store.delete(PREFS, "ada") is None
    record = await store.read(PREFS, "ada")
    assert isinstance(record, Tombstone)
    assert record.version == 2


async def test_version_keeps_counting_across_delete_and_recreate(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    await store.delete(PREFS, "ada")
    with pytest.raises(VersionConflict) as caught:
        await store.write(PREFS, "ada", Prefs("fr"), expected=0)
    assert caught.value.current == 2
    assert (await store.write(PREFS, "ada", Prefs("fr"), expected=2)).version == 3


async def test_cas_delete_with_stale_version_raises_version_conflict(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    await store.write(PREFS, "ada", Prefs("fr"))
    with pytest.raises(VersionConflict):
        await store.delete(PREFS, "ada", expected=1)
    assert isinstance(await store.read(PREFS, "ada"), Versioned)
    assert isinstance(await store.delete(PREFS, "ada", expected=2), Tombstone)


async def test_value_of_the_wrong_type_raises_invalid_value_and_writes_nothing(
    store: Store,
) -> None:
    with pytest.raises(InvalidValue) as caught:
        await store.write(COUNTERS, "c", "seven")  # type: ignore[arg-type]
    assert (caught.value.scope, caught.value.key, caught.value.expected_type) == (
        "counters",
        "c",
        "int",
    )
    with pytest.raises(InvalidValue):
        await store.write(PREFS, "p", {"language": 3})  # type: ignore[arg-type]
    assert await store.read(COUNTERS, "c") is None
    assert await store.read(PREFS, "p") is None


async def test_value_that_msgspec_cannot_encode_raises_invalid_value(store: Store) -> None:
    with pytest.raises(InvalidValue):
        await store.write(PREFS, "p", object())  # type: ignore[arg-type]


async def test_stored_value_that_does_not_decode_raises_stored_value_invalid(
    store: Store,
) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    await store.write(PREFS, "ada", Prefs("fr"))
    changed: Scope[PrefsV2] = Scope("prefs", PrefsV2, owner=PREFS.owner)
    with pytest.raises(StoredValueInvalid) as caught:
        await store.read(changed, "ada")
    error = caught.value
    assert (error.scope, error.key, error.version) == ("prefs", "ada", 2)
    assert "region" in str(error)
    assert "PrefsV2" in str(error)
    with pytest.raises(StoredValueInvalid):
        await store.scan(changed)


async def test_reads_return_copies_that_share_nothing_with_the_written_value(
    store: Store,
) -> None:
    tags: Scope[list[str]] = Scope("tags", list[str], owner="w")
    value = ["a"]
    await store.write(tags, "t", value)
    value.append("mutated")
    first = await store.read(tags, "t")
    assert isinstance(first, Versioned)
    assert first.value == ["a"]
    first.value.append("again")
    second = await store.read(tags, "t")
    assert isinstance(second, Versioned)
    assert second.value == ["a"]


async def test_scan_returns_live_keys_under_the_prefix_in_key_order(store: Store) -> None:
    for key in ("u/2", "u/1", "u/3", "v/1", "u"):
        await store.write(COUNTERS, key, 1)
    await store.delete(COUNTERS, "u/3")
    assert [key for key, _ in await store.scan(COUNTERS, "u/")] == ["u/1", "u/2"]
    assert [key for key, _ in await store.scan(COUNTERS, "u/", limit=1)] == ["u/1"]
    assert [key for key, _ in await store.scan(COUNTERS)] == ["u", "u/1", "u/2", "v/1"]
    assert await store.scan(PREFS) == []


async def test_scan_handles_prefixes_ending_in_the_highest_code_point(store: Store) -> None:
    top = "\U0010ffff"
    for key in (f"a{top}", f"a{top}x", "b"):
        await store.write(COUNTERS, key, 1)
    assert [key for key, _ in await store.scan(COUNTERS, f"a{top}")] == [f"a{top}", f"a{top}x"]


async def test_check_fresh_reports_exactly_the_reads_written_after(store: Store) -> None:
    await store.write(PREFS, "a", Prefs("en"))
    await store.write(PREFS, "b", Prefs("en"))
    reads = [
        ReadEntry("prefs", "a", 1),
        ReadEntry("prefs", "b", 1),
        ReadEntry("prefs", "never", 0),
        ReadEntry("counters", "a", 0),
    ]
    assert await store.check_fresh(reads) == ()
    await store.write(PREFS, "b", Prefs("fr"))
    await store.write(COUNTERS, "a", 1)
    assert await store.check_fresh(reads) == (reads[1], reads[3])


async def test_check_fresh_reports_a_read_whose_key_was_deleted_after(store: Store) -> None:
    await store.write(PREFS, "a", Prefs("en"))
    read = ReadEntry("prefs", "a", 1)
    await store.delete(PREFS, "a")
    assert await store.check_fresh([read]) == (read,)
    assert await store.check_fresh([ReadEntry("prefs", "a", 2)]) == ()


async def test_check_fresh_of_many_reads_answers_each(store: Store) -> None:
    for n in range(300):
        await store.write(COUNTERS, f"k{n}", n)
    reads = [ReadEntry("counters", f"k{n}", 1) for n in range(300)]
    await store.write(COUNTERS, "k299", 0)
    await store.write(COUNTERS, "k0", 0)
    assert await store.check_fresh(reads) == (reads[0], reads[299])


async def test_watch_on_a_key_delivers_each_version_in_order(store: Store) -> None:
    got: list[StateChanged | WatchGap] = []
    watch = await store.watch(PREFS, key="ada", sink=got.append)
    await store.write(PREFS, "ada", Prefs("en"), writer="w", trace_id="t")
    await store.write(PREFS, "other", Prefs("en"))
    await store.write(PREFS, "ada", Prefs("fr"))
    await store.delete(PREFS, "ada")
    assert [(m.key, m.version, m.deleted) for m in got if isinstance(m, StateChanged)] == [
        ("ada", 1, False),
        ("ada", 2, False),
        ("ada", 3, True),
    ]
    first = got[0]
    assert isinstance(first, StateChanged)
    assert (first.value, first.updated_by, first.trace_id) == (Prefs("en"), "w", "t")
    assert watch.delivered == 3
    assert watch.gaps == 0


async def test_watch_on_a_prefix_delivers_only_keys_under_it(store: Store) -> None:
    got: list[StateChanged | WatchGap] = []
    await store.watch(COUNTERS, prefix="user:", sink=got.append)
    for key in ("user:1", "team:1", "user:2", "user:1"):
        await store.write(COUNTERS, key, 0)
    assert [(m.key, m.version) for m in got if isinstance(m, StateChanged)] == [
        ("user:1", 1),
        ("user:2", 1),
        ("user:1", 2),
    ]


async def test_concurrent_writes_are_delivered_to_a_watch_in_version_order(store: Store) -> None:
    got: list[StateChanged | WatchGap] = []
    await store.watch(COUNTERS, prefix="", sink=got.append)

    async def write_many(key: str) -> None:
        for n in range(20):
            await store.write(COUNTERS, key, n)

    async with anyio.create_task_group() as tg:
        for key in ("a", "b", "c"):
            tg.start_soon(write_many, key)
    for key in ("a", "b", "c"):
        versions = [m.version for m in got if isinstance(m, StateChanged) and m.key == key]
        assert versions == list(range(1, 21))


async def test_watch_since_the_current_version_delivers_only_later_versions(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    got: list[StateChanged | WatchGap] = []
    await store.watch(PREFS, key="ada", sink=got.append, since=1)
    assert got == []
    await store.write(PREFS, "ada", Prefs("fr"))
    assert [m.version for m in got if isinstance(m, StateChanged)] == [2]


async def test_watch_since_the_previous_version_delivers_the_current_one(store: Store) -> None:
    await store.write(PREFS, "ada", Prefs("en"))
    await store.write(PREFS, "ada", Prefs("fr"))
    got: list[StateChanged | WatchGap] = []
    await store.watch(PREFS, key="ada", sink=got.append, since=1)
    assert len(got) == 1
    assert isinstance(got[0], StateChanged)
    assert (got[0].version, got[0].value) == (2, Prefs("fr"))


async def test_watch_since_an_older_version_sends_a_replay_gap(store: Store) -> None:
    for language in ("en", "fr", "de"):
        await store.write(PREFS, "ada", Prefs(language))
    got: list[StateChanged | WatchGap] = []
    await store.watch(PREFS, key="ada", sink=got.append, since=1)
    await store.write(PREFS, "ada", Prefs("it"))
    assert got[0] == WatchGap(scope="prefs", key="ada", reason="replay_unavailable")
    assert isinstance(got[1], StateChanged)
    assert got[1].version == 4


async def test_failing_sink_gets_a_watch_gap_before_the_next_change(store: Store) -> None:
    got: list[StateChanged | WatchGap] = []
    refuse = [True]

    def sink(message: StateChanged | WatchGap) -> None:
        if refuse[0]:
            raise RuntimeError("mailbox full")
        got.append(message)

    watch = await store.watch(PREFS, key="ada", sink=sink)
    await store.write(PREFS, "ada", Prefs("en"))
    assert watch.owes_gap
    refuse[0] = False
    await store.write(PREFS, "ada", Prefs("fr"))
    assert got[0] == WatchGap(scope="prefs", key="ada", reason="delivery_failed")
    assert isinstance(got[1], StateChanged)
    assert got[1].version == 2
    assert not watch.owes_gap
    assert watch.gaps == 1


async def test_an_owed_gap_is_retried_without_another_write(store: Store) -> None:
    arrived = anyio.Event()
    calls = [0]

    def sink(message: StateChanged | WatchGap) -> None:
        calls[0] += 1
        if calls[0] <= 2:  # the change, then the first retry of the gap
            raise RuntimeError("mailbox full")
        if isinstance(message, WatchGap):
            arrived.set()

    watch = await store.watch(PREFS, prefix="", sink=sink)
    await store.write(PREFS, "ada", Prefs("en"))
    with anyio.fail_after(5):
        await arrived.wait()
    assert not watch.owes_gap


async def test_a_closed_watch_receives_nothing(store: Store) -> None:
    got: list[StateChanged | WatchGap] = []
    watch = await store.watch(PREFS, key="ada", sink=got.append)
    await watch.aclose()
    watch.close()
    await store.write(PREFS, "ada", Prefs("en"))
    assert got == []
    assert watch.closed


async def test_a_sink_may_close_its_own_watch(store: Store) -> None:
    got: list[StateChanged | WatchGap] = []

    def sink(message: StateChanged | WatchGap) -> None:
        got.append(message)
        watch.close()

    watch = await store.watch(PREFS, prefix="", sink=sink)
    await store.write(PREFS, "a", Prefs("en"))
    await store.write(PREFS, "b", Prefs("en"))
    assert len(got) == 1


@pytest.mark.parametrize(
    ("key", "prefix", "since"),
    [(None, None, None), ("k", "k", None), (None, "p", 1), ("k", None, -1)],
)
async def test_watch_of_a_bad_target_is_a_usage_error(
    store: Store, key: str | None, prefix: str | None, since: int | None
) -> None:
    with pytest.raises(UsageError):
        await store.watch(PREFS, key=key, prefix=prefix, sink=lambda m: None, since=since)


@pytest.mark.parametrize("key", ["", 3, None, b"k"])
async def test_a_key_that_is_not_a_non_empty_str_raises_invalid_key(
    store: Store, key: object
) -> None:
    with pytest.raises(InvalidKey):
        await store.write(PREFS, key, Prefs("en"))  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        await store.read(PREFS, key)  # type: ignore[arg-type]


@pytest.mark.parametrize("expected", [-1, 1.0, "1", True])
async def test_an_expected_version_that_is_not_an_int_from_zero_is_a_usage_error(
    store: Store, expected: object
) -> None:
    with pytest.raises(UsageError):
        await store.write(PREFS, "k", Prefs("en"), expected=expected)  # type: ignore[arg-type]
    assert await store.read(PREFS, "k") is None


async def test_concurrent_writes_to_one_key_get_distinct_consecutive_versions(
    store: Store,
) -> None:
    versions: list[int] = []

    async def write(n: int) -> None:
        versions.append((await store.write(COUNTERS, "c", n)).version)

    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(write, n)
    assert sorted(versions) == list(range(1, 51))


async def test_a_closed_store_raises_store_closed_and_closes_its_watches(store: Store) -> None:
    watch = await store.watch(PREFS, key="k", sink=lambda m: None)
    await store.aclose()
    await store.aclose()
    assert watch.closed
    with pytest.raises(StoreClosed):
        await store.write(PREFS, "k", Prefs("en"))
    with pytest.raises(StoreClosed):
        await store.read(PREFS, "k")
    with pytest.raises(StoreClosed):
        await store.check_fresh([])


def test_state_changed_and_watch_gap_are_messages_that_round_trip_msgpack() -> None:
    union = StateChanged | WatchGap
    messages: list[StateChanged | WatchGap] = [
        StateChanged(scope="s", key="k", version=2, value=[1, 2], updated_at=1.5),
        WatchGap(scope="s", prefix="", reason="delivery_failed"),
    ]
    for message in messages:
        assert isinstance(message, Message)
        decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(message), type=union)
        assert decoded == message
