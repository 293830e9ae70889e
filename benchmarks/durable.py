"""Durable mailbox throughput: enqueue, deliver and ack, beside raw aiosqlite and sqlite3.

Run::

    uv run benchmarks/durable.py [--quick] [--json] [--repeat N]

Every figure is messages per second through the whole cycle (a message is
committed to disk, read back or handed out, and deleted once done), on a
fresh file (WAL, ``synchronous=NORMAL``) with the durable mailbox's own
schema, indexes included, all with the same batch size ``BATCH``:

``greenroom``
    End to end through the runtime: ``BATCH`` producer tasks ``await
    ref.tell(...)`` (each returns once its message is committed) to one actor
    on a ``kind="durable"`` mailbox of ``SqliteMailboxes(batch=BATCH)``; its
    handler counts. The clock stops when the last message was handled and
    every ack was committed (``boxes.flush()``).
``mailbox``
    The same through the mailbox alone: producers ``await box.put``, one
    consumer task takes with ``get_nowait`` and acks.
``aiosqlite``
    The raw floor: one task, per batch of ``BATCH``: ``executemany`` INSERT +
    commit, one SELECT of the oldest ``BATCH`` rows, ``executemany`` DELETE +
    commit (five thread hops per batch). No decoding, no envelopes.
``sqlite3``
    The same calls on the stdlib ``sqlite3`` module, no thread hops: what
    SQLite itself costs.

Sizes: 50,000 messages per figure, 5 repeats (--quick: 10,000, 3 repeats),
after an untimed warm-up at a tenth of the size; contenders interleaved in
each repeat; each figure is the median. ``durable_vs_sqlite_floor`` is
greenroom's end-to-end rate divided by raw aiosqlite's; the issue's targets
are ``>= 0.5`` and ``>= 50,000`` messages per second end to end.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _harness as h
import aiosqlite
import anyio
import msgspec

import greenroom as gr
from greenroom.mailbox import SqliteMailbox, SqliteMailboxes, make_envelope
from greenroom.mailbox._sqlite_schema import INSERT, MESSAGES, MIGRATIONS

BATCH = 100
TARGET_RATIO = 0.5
TARGET_RATE = 50_000
SELECT = (
    "SELECT seq, id, sender, reply_to, correlation_id, trace_id, parent_span_id, attempt, "
    f"created_at, deadline, body FROM {MESSAGES} WHERE actor = ? AND owner IS NULL "
    "ORDER BY seq LIMIT ?"
)
DELETE = f"DELETE FROM {MESSAGES} WHERE seq = ?"
BODY = msgspec.msgpack.encode({"type": "Job", "n": 1})


class Job(gr.Message):
    n: int


class Sink(gr.Actor):
    def __init__(self, total: int, done: anyio.Event) -> None:
        self.total = total
        self.count = 0
        self.done = done

    @gr.handler
    async def job(self, msg: Job) -> None:
        self.count += 1
        if self.count == self.total:
            self.done.set()


async def producers(total: int, send: Callable[[int], Any]) -> None:
    per_task = total // BATCH

    async def produce(worker: int) -> None:
        for n in range(per_task):
            await send(worker * per_task + n)

    async with anyio.create_task_group() as tg:
        for worker in range(BATCH):
            tg.start_soon(produce, worker)


async def greenroom_rate(path: Path, total: int) -> float:
    done = anyio.Event()
    async with (
        SqliteMailboxes(path, batch=BATCH) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(
            Sink, args=(total, done), mailbox=gr.MailboxConfig(kind="durable", capacity=4 * BATCH)
        )
        h.settle()
        start = time.perf_counter()
        await producers(total, lambda n: ref.tell(Job(n=n)))
        await done.wait()
        await boxes.flush()
        return total / (time.perf_counter() - start)


async def mailbox_rate(path: Path, total: int) -> float:
    async with SqliteMailboxes(path, batch=BATCH) as boxes:
        box = boxes.create("sink", gr.MailboxConfig(capacity=4 * BATCH), (Job,))
        assert isinstance(box, SqliteMailbox)
        arrived = anyio.Event()

        def wake() -> None:
            arrived.set()

        box.set_listener(wake)

        async def consume() -> None:
            nonlocal arrived
            taken = 0
            while taken < total:
                envelope = box.get_nowait()
                if envelope is None:
                    arrived = anyio.Event()
                    await arrived.wait()
                    continue
                box.ack(envelope)
                taken += 1

        h.settle()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await producers(total, lambda n: box.put(make_envelope("sink", Job(n=n))))
        await boxes.flush()
        return total / (time.perf_counter() - start)


def rows(start: int) -> list[tuple[Any, ...]]:
    now = time.time()
    return [
        ("sink", n, None, None, None, n, None, 1, now, None, BODY, None, None)
        for n in range(start, start + BATCH)
    ]


def create_schema(db: sqlite3.Connection) -> None:
    for _, statements in MIGRATIONS:  # the same schema (and dedupe trigger) as the mailbox's
        for statement in statements:
            db.execute(statement)
    db.commit()


async def aiosqlite_rate(path: Path, total: int) -> float:
    async with aiosqlite.connect(path) as db:
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = NORMAL")
        for _, statements in MIGRATIONS:
            for statement in statements:
                await db.execute(statement)
        await db.commit()
        h.settle()
        start = time.perf_counter()
        for first in range(0, total, BATCH):
            await db.executemany(INSERT, rows(first))
            await db.commit()
            taken = await db.execute_fetchall(SELECT, ("sink", BATCH))
            await db.executemany(DELETE, [(row[0],) for row in taken])
            await db.commit()
        return total / (time.perf_counter() - start)


def sqlite3_rate(path: Path, total: int) -> float:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        create_schema(db)
        h.settle()
        start = time.perf_counter()
        for first in range(0, total, BATCH):
            db.executemany(INSERT, rows(first))
            db.commit()
            taken = db.execute(SELECT, ("sink", BATCH)).fetchall()
            db.executemany(DELETE, [(row[0],) for row in taken])
            db.commit()
        return total / (time.perf_counter() - start)
    finally:
        db.close()


async def one_round(directory: Path, round_: int, total: int) -> dict[str, float]:
    return {
        "greenroom": await greenroom_rate(directory / f"g{round_}.db", total),
        "mailbox": await mailbox_rate(directory / f"m{round_}.db", total),
        "aiosqlite": await aiosqlite_rate(directory / f"a{round_}.db", total),
        "sqlite3": sqlite3_rate(directory / f"s{round_}.db", total),
    }


async def main(args: h.BenchArgs) -> None:
    total = 10_000 if args.quick else 50_000
    rounds: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as directory:
        await one_round(Path(directory), -1, total // 10)  # warm-up
        for round_ in range(args.repeat):
            rounds.append(await one_round(Path(directory), round_, total))
    rates = {name: h.median([r[name] for r in rounds]) for name in rounds[0]}
    ratios = {
        "durable_vs_sqlite_floor": rates["greenroom"] / rates["aiosqlite"],
        "durable_vs_sqlite3": rates["greenroom"] / rates["sqlite3"],
        "mailbox_vs_sqlite_floor": rates["mailbox"] / rates["aiosqlite"],
    }
    print(
        f"durable: enqueue + deliver + ack, batch {BATCH}, {total:,} messages per figure, "
        f"median of {args.repeat} ({'quick' if args.quick else 'full'})"
    )
    h.print_table(
        ["contender", "msg/s", "us/msg"],
        [[name, h.fmt_rate(rate), h.fmt_us(rate)] for name, rate in rates.items()],
    )
    print()
    h.print_table(["ratio", "x"], [[name, f"{ratio:.2f}"] for name, ratio in ratios.items()])
    ratio_ok = ratios["durable_vs_sqlite_floor"] >= TARGET_RATIO
    rate_ok = rates["greenroom"] >= TARGET_RATE
    print(
        f"durable_vs_sqlite_floor {'meets' if ratio_ok else 'MISSES'} the target of "
        f"{TARGET_RATIO}; end to end {'meets' if rate_ok else 'MISSES'} {TARGET_RATE:,} msg/s"
    )
    if args.json:
        h.emit_json(
            {
                "benchmark": "durable",
                "mode": "quick" if args.quick else "full",
                "repeat": args.repeat,
                "batch": BATCH,
                "messages": total,
                "environment": h.environment(),
                "per_second": rates,
                "us_per_message": {name: 1e6 / rate for name, rate in rates.items()},
                "ratios": ratios,
                "targets": {
                    "durable_vs_sqlite_floor": TARGET_RATIO,
                    "greenroom_per_second": TARGET_RATE,
                },
            }
        )


if __name__ == "__main__":
    anyio.run(main, h.parse_args(__doc__.splitlines()[0] if __doc__ else "durable"))
