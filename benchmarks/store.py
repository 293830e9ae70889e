"""Store throughput: reads and CAS writes per second, memory and sqlite, beside raw aiosqlite.

Every sqlite figure is measured beside raw aiosqlite running the same SQL on
the same kind of file (WAL, synchronous=NORMAL) in the same process and run:

- reads: ``concurrency`` tasks each read keys (one ``SELECT ... WHERE scope = ?
  AND key = ?`` per read); raw aiosqlite runs the SELECT alone (no decode).
- CAS writes: ``concurrency`` tasks each own a key and compare-and-set it in
  a loop; raw aiosqlite runs the conditional ``UPDATE ... WHERE version = ?``
  and a commit per write (two thread hops, its fastest honest form), while
  the store commits groups of writes.

Sizes: 64 concurrent tasks (many writers, so group commit matters), 20,000
operations per figure, 5 repeats (--quick: 4,000 operations, 3 repeats),
after an untimed warm-up at a tenth of the size. Setup (files, prefill) is
outside the timed region; garbage is collected before each; contenders are
interleaved within each repeat; each figure is the median of the repeats.
Ratios are the store's throughput divided by raw aiosqlite's (above 1: the
store is faster); the issue's target is ``sqlite_write_vs_aiosqlite >= 0.7``.

    uv run benchmarks/store.py [--quick] [--json] [--repeat N]
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import _harness as h
import aiosqlite
import anyio
import msgspec

from greenroom.store import MemoryStore, Scope, SqliteStore, Store


class Prefs(msgspec.Struct, frozen=True):
    language: str
    tone: str
    visits: int


PREFS: Scope[Prefs] = Scope("prefs", Prefs, owner="bench")
TABLE = "greenroom_store_records"
READ_SQL = (
    f"SELECT version, value, updated_at, updated_by, trace_id FROM {TABLE} "
    "WHERE scope = ? AND key = ?"
)
CAS_SQL = (
    f"UPDATE {TABLE} SET version = version + 1, value = ?, updated_at = ?, updated_by = ?, "
    "trace_id = ? WHERE scope = ? AND key = ? AND version = ?"
)
ENCODER = msgspec.msgpack.Encoder()
CONCURRENCY = 64
TARGET = 0.7


def value(n: int) -> Prefs:
    return Prefs(language="en", tone="plain", visits=n)


async def run_tasks(concurrency: int, body: Callable[[int], Awaitable[None]]) -> None:
    async with anyio.create_task_group() as tg:
        for worker in range(concurrency):
            tg.start_soon(body, worker)


async def store_reads(store: Store, concurrency: int, per_task: int) -> float:
    for worker in range(concurrency):
        await store.write(PREFS, f"user:{worker}", value(0))

    async def reader(worker: int) -> None:
        key = f"user:{worker}"
        for _ in range(per_task):
            await store.read(PREFS, key)

    h.settle()
    start = time.perf_counter()
    await run_tasks(concurrency, reader)
    return concurrency * per_task / (time.perf_counter() - start)


async def store_writes(store: Store, concurrency: int, per_task: int) -> float:
    for worker in range(concurrency):
        await store.write(PREFS, f"user:{worker}", value(0))

    async def writer(worker: int) -> None:
        key, version = f"user:{worker}", 1
        for n in range(per_task):
            version = (await store.write(PREFS, key, value(n), expected=version)).version

    h.settle()
    start = time.perf_counter()
    await run_tasks(concurrency, writer)
    return concurrency * per_task / (time.perf_counter() - start)


async def raw_connection(path: Path) -> aiosqlite.Connection:
    db = await aiosqlite.connect(path)
    await db.execute("PRAGMA journal_mode = WAL")
    await db.execute("PRAGMA synchronous = NORMAL")
    await db.execute(
        f"CREATE TABLE {TABLE} (scope TEXT NOT NULL, key TEXT NOT NULL, "
        "version INTEGER NOT NULL, value BLOB, updated_at REAL NOT NULL, updated_by TEXT, "
        "trace_id TEXT, PRIMARY KEY (scope, key)) WITHOUT ROWID"
    )
    await db.commit()
    return db


async def raw_prefill(db: aiosqlite.Connection, concurrency: int) -> None:
    await db.executemany(
        f"INSERT INTO {TABLE} VALUES (?, ?, 1, ?, ?, NULL, NULL)",
        [("prefs", f"user:{w}", ENCODER.encode(value(0)), time.time()) for w in range(concurrency)],
    )
    await db.commit()


async def raw_reads(path: Path, concurrency: int, per_task: int) -> float:
    db = await raw_connection(path)
    try:
        await raw_prefill(db, concurrency)

        async def reader(worker: int) -> None:
            params = ("prefs", f"user:{worker}")
            for _ in range(per_task):
                await db.execute_fetchall(READ_SQL, params)

        h.settle()
        start = time.perf_counter()
        await run_tasks(concurrency, reader)
        return concurrency * per_task / (time.perf_counter() - start)
    finally:
        await db.close()


async def raw_writes(path: Path, concurrency: int, per_task: int) -> float:
    db = await raw_connection(path)
    try:
        await raw_prefill(db, concurrency)

        async def writer(worker: int) -> None:
            key, version = f"user:{worker}", 1
            for n in range(per_task):
                data = ENCODER.encode(value(n))
                cursor = await db.execute(
                    CAS_SQL, (data, time.time(), "bench", None, "prefs", key, version)
                )
                if cursor.rowcount != 1:
                    raise RuntimeError("raw CAS conflicted; the benchmark is broken")
                await db.commit()
                version += 1

        h.settle()
        start = time.perf_counter()
        await run_tasks(concurrency, writer)
        return concurrency * per_task / (time.perf_counter() - start)
    finally:
        await db.close()


async def one_round(directory: Path, round_: int, concurrency: int, ops: int) -> dict[str, float]:
    per_task = max(1, ops // concurrency)
    rates: dict[str, float] = {}
    rates["aiosqlite_write"] = await raw_writes(
        directory / f"raw-w{round_}.db", concurrency, per_task
    )
    async with SqliteStore(directory / f"store-w{round_}.db") as sqlite:
        rates["sqlite_write"] = await store_writes(sqlite, concurrency, per_task)
    async with MemoryStore() as memory:
        rates["memory_write"] = await store_writes(memory, concurrency, per_task)
    rates["aiosqlite_read"] = await raw_reads(
        directory / f"raw-r{round_}.db", concurrency, per_task
    )
    async with SqliteStore(directory / f"store-r{round_}.db") as sqlite:
        rates["sqlite_read"] = await store_reads(sqlite, concurrency, per_task)
    async with MemoryStore() as memory:
        rates["memory_read"] = await store_reads(memory, concurrency, per_task)
    return rates


async def main(args: h.BenchArgs) -> None:
    ops = 4_000 if args.quick else 20_000
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as directory:
        await one_round(Path(directory), -1, CONCURRENCY, ops // 10)  # warm-up
        for round_ in range(args.repeat):
            rounds.append(await one_round(Path(directory), round_, CONCURRENCY, ops))
    rates = {name: h.median([r[name] for r in rounds]) for name in rounds[0]}
    ratios = {
        "sqlite_write_vs_aiosqlite": rates["sqlite_write"] / rates["aiosqlite_write"],
        "sqlite_read_vs_aiosqlite": rates["sqlite_read"] / rates["aiosqlite_read"],
        "memory_write_vs_aiosqlite": rates["memory_write"] / rates["aiosqlite_write"],
        "memory_read_vs_aiosqlite": rates["memory_read"] / rates["aiosqlite_read"],
    }
    print(
        f"store: {CONCURRENCY} concurrent tasks, {ops:,} ops per figure, "
        f"median of {args.repeat} ({'quick' if args.quick else 'full'})"
    )
    h.print_table(
        ["contender", "ops/s", "us/op"],
        [[name, h.fmt_rate(rate), h.fmt_us(rate)] for name, rate in rates.items()],
    )
    print()
    h.print_table(["ratio", "x"], [[name, f"{ratio:.2f}"] for name, ratio in ratios.items()])
    verdict = "meets" if ratios["sqlite_write_vs_aiosqlite"] >= TARGET else "MISSES"
    print(f"sqlite_write_vs_aiosqlite {verdict} the target of {TARGET}")
    if args.json:
        h.emit_json(
            {
                "benchmark": "store",
                "mode": "quick" if args.quick else "full",
                "repeat": args.repeat,
                "concurrency": CONCURRENCY,
                "ops": ops,
                "environment": h.environment(),
                "per_second": rates,
                "us_per_op": {name: 1e6 / rate for name, rate in rates.items()},
                "ratios": ratios,
                "targets": {"sqlite_write_vs_aiosqlite": TARGET},
            }
        )


if __name__ == "__main__":
    anyio.run(main, h.parse_args(__doc__.splitlines()[0] if __doc__ else "store"))
