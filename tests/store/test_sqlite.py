"""What only the sqlite backend promises: durability, group commit, migrations."""

from __future__ import annotations

import signal
import sqlite3
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from greenroom._errors import UsageError
from greenroom.store import SqliteStore, StoreUnavailable, VersionConflict, Versioned
from greenroom.store._migrations import MIGRATIONS, SCHEMA_TABLE
from tests.store.conftest import COUNTERS, PREFS, Prefs

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]

WRITER_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import anyio
    from greenroom.store import SqliteStore
    from tests.store.conftest import COUNTERS

    async def main(path: str) -> None:
        store = SqliteStore(path)
        await store.__aenter__()
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(store.write, COUNTERS, f"batch-{n}", n)
        record = await store.write(COUNTERS, "last", 42, expected=0)
        # Killed right after the write returns: no close, no checkpoint, no flush.
        os.kill(os.getpid(), signal.SIGKILL)

    anyio.run(main, sys.argv[1])
    """
)


@pytest.mark.slow
async def test_a_write_survives_sigkill_right_after_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-c", WRITER_SCRIPT, str(path)], cwd=ROOT, check=False
        )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    async with SqliteStore(path) as store:
        record = await store.read(COUNTERS, "last")
        assert isinstance(record, Versioned)
        assert (record.value, record.version) == (42, 1)
        for n in range(20):
            batch = await store.read(COUNTERS, f"batch-{n}")
            assert isinstance(batch, Versioned)
            assert batch.value == n


async def test_concurrent_writers_are_committed_in_groups(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:

        async def write(n: int) -> None:
            await store.write(COUNTERS, f"k{n}", n)

        async with anyio.create_task_group() as tg:
            for n in range(200):
                tg.start_soon(write, n)
        stats = store.statistics()
    assert stats.writes == 200
    assert stats.commits < 20
    assert stats.largest_batch > 10


async def test_conflicting_writes_in_one_batch_are_decided_in_arrival_order(
    tmp_path: Path,
) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        won: list[int] = []
        conflicts: list[int] = []

        async def write(n: int) -> None:
            try:
                won.append((await store.write(COUNTERS, "c", n, expected=0)).value)
            except VersionConflict as error:
                conflicts.append(error.current)

        async with anyio.create_task_group() as tg:
            for n in range(10):
                tg.start_soon(write, n)
        assert store.statistics().commits == 1
        assert won == [0]
        assert conflicts == [1] * 9
        record = await store.read(COUNTERS, "c")
        assert isinstance(record, Versioned)
        assert (record.value, record.version) == (0, 1)


async def test_a_batch_larger_than_max_batch_is_split(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db", max_batch=4) as store:
        async with anyio.create_task_group() as tg:
            for n in range(30):
                tg.start_soon(store.write, COUNTERS, "same", n)
        assert store.statistics().largest_batch <= 4
        record = await store.read(COUNTERS, "same")
        assert isinstance(record, Versioned)
        assert record.version == 30


async def test_writes_queued_at_close_are_committed_before_it_returns(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path) as store, anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(store.write, COUNTERS, f"k{n}", n)
    async with SqliteStore(path) as store:
        assert len(await store.scan(COUNTERS)) == 10


async def test_a_cancelled_writer_leaves_the_store_consistent(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.db") as store:
        with anyio.move_on_after(0):
            await store.write(COUNTERS, "c", 1)
        record = await store.write(COUNTERS, "c", 2)
        assert record.version in (1, 2)
        assert await store.read(COUNTERS, "c") == record


async def test_values_are_stored_as_msgpack_and_the_schema_version_is_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path) as store:
        await store.write(PREFS, "ada", Prefs("en"))
    with sqlite3.connect(path) as db:
        (blob,) = db.execute("SELECT value FROM greenroom_store_records").fetchone()
        (version,) = db.execute(f"SELECT max(version) FROM {SCHEMA_TABLE}").fetchone()
        (mode,) = db.execute("PRAGMA journal_mode").fetchone()
    db.close()
    assert blob == b"\x82\xa8language\xa2en\xa4tone\xa5plain"
    assert version == MIGRATIONS[-1][0]
    assert mode == "wal"


async def test_reopening_applies_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    for _ in range(2):
        async with SqliteStore(path) as store:
            await store.write(COUNTERS, "c", 1)
    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT version FROM {SCHEMA_TABLE}").fetchall()
    db.close()
    assert rows == [(n,) for n, _ in MIGRATIONS]


async def test_a_database_with_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with SqliteStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"INSERT INTO {SCHEMA_TABLE} VALUES (999, 0)")
    db.close()
    with pytest.raises(StoreUnavailable, match="schema version 999 is newer"):
        async with SqliteStore(path):
            pass


async def test_a_file_that_is_not_a_database_raises_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreUnavailable) as caught:
        async with SqliteStore(path):
            pass
    assert isinstance(caught.value.__cause__, sqlite3.Error)


async def test_a_write_made_by_another_process_shows_up_as_a_version_skipped_gap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.db"
    got: list[object] = []
    async with SqliteStore(path) as store, SqliteStore(path) as other:
        await store.watch(COUNTERS, key="c", sink=got.append)
        await store.write(COUNTERS, "c", 1)
        await other.write(COUNTERS, "c", 2)
        await store.write(COUNTERS, "c", 3)
    assert [type(m).__name__ for m in got] == ["StateChanged", "WatchGap", "StateChanged"]


@pytest.mark.parametrize(
    "options",
    [{"max_batch": 0}, {"max_batch": 5000}, {"synchronous": "SOMETIMES"}, {"busy_timeout": -1}],
)
def test_bad_options_are_usage_errors(tmp_path: Path, options: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        SqliteStore(tmp_path / "s.db", **options)  # type: ignore[arg-type]


def test_an_in_memory_path_is_a_usage_error_naming_memory_store() -> None:
    with pytest.raises(UsageError, match="MemoryStore"):
        SqliteStore(":memory:")


async def test_a_store_cannot_be_opened_twice(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    async with store:
        with pytest.raises(UsageError):
            await store.__aenter__()
