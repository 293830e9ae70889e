"""Distributed throughput: greenroom's Redis mailbox beside raw redis.asyncio, same server and run.

Run::

    uv run benchmarks/distributed.py [--quick] [--json] [--repeat N]

The benchmark starts its own ``redis-server`` (from ``PATH``) on a free
loopback port, without persistence (``--save "" --appendonly no``), in a
temporary directory, and kills it at exit. Without the binary it says so
and exits 0, its JSON saying ``"skipped"``. The client's reply parser
(``hiredis`` when importable, else redis-py's pure-Python one) is printed
and kept in the JSON: try both with ``uv run --with hiredis ...``.

Part 1: one process, one actor's stream. Every figure is messages per
second; entries carry the fields greenroom writes (``h``: the msgpack
envelope header, ``b``: the msgpack body) with the same sizes.

``raw``
    The floor, end to end: raw ``redis.asyncio`` in one task, ``BATCH``
    messages at a time: XADD in one pipeline, then XREADGROUP (count
    ``BATCH``) and XACK + XDEL in one pipeline. Its two halves are also
    printed (``raw_xadd``, ``raw_read_ack``: all XADDs first, then all
    reads), with the cost of one message per call (``raw_xadd_per_call``:
    one awaited XADD; ``raw_read_ack_per_call``: XREADGROUP count 1, then
    XACK + XDEL in one pipeline).
``mailbox``
    :class:`~greenroom.mailbox.RedisMailbox` alone: ``BATCH`` producer tasks
    ``await box.put`` (each returns once Redis has the entry), one consumer
    takes with ``get_nowait`` and acks. The clock stops when every ack is in
    Redis (``boxes.flush()``).
``mailbox_offer``
    The same with one producer using the fire-and-forget mode: ``offer``
    while there is room, an awaited ``put`` when the mailbox is full.
``runtime``
    End to end through the runtime: ``BATCH`` producer tasks ``await
    ref.tell(...)`` to one actor on a ``kind="durable"`` mailbox of
    ``RedisMailboxes(batch=BATCH)``; its handler counts.

Sizes: 20,000 messages per figure (per-call figures 4,000), 5 repeats
(--quick: 4,000 / 1,000, 3 repeats), after an untimed warm-up at a tenth of
the size; contenders interleaved in each repeat, each on a fresh key
prefix; each figure is the median. ``redis_mailbox_vs_raw`` is ``mailbox``
divided by ``raw`` (the issue's target: ``>= 0.5``); ``runtime_vs_raw`` and
``mailbox_offer_vs_raw`` likewise.

Part 2: the throughput of a keyed pool (``greenroom.cluster``) on 1, 2 and
3 node processes, on the same server (see ``benchmarks/_scaling.py``): the
nodes start and share the 12 partitions (untimed), then the clock runs
while this process sends the messages over 120 keys and until every
partition stream is empty. Each handler spends 100 us of CPU. Ratios
``scaling_2_vs_1`` and ``scaling_3_vs_1``; figures under ``"part2"``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import _harness as h
import anyio
import redis.asyncio
import redis.utils

import greenroom as gr
from greenroom.mailbox import RedisMailbox, RedisMailboxes, make_envelope
from greenroom.mailbox._redis_mailbox_entries import encode_header
from greenroom.mailbox._sqlite_rows import encode_body

BATCH = 100
TARGET_RATIO = 0.5
GROUP = "greenroom"


class Job(gr.Message):
    n: int


# -- the server ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def redis_server(binary: str) -> Iterator[str]:
    """A fresh redis-server on a free loopback port; yields its URL, kills it on exit."""
    directory = tempfile.mkdtemp(prefix="greenroom-bench-redis-")
    process: subprocess.Popen[str] | None = None

    def stop() -> None:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)

    atexit.register(stop)  # also when the run is interrupted
    try:
        log: list[str] = []
        for _ in range(5):  # a port taken between the probe and the bind: try another
            port = _free_port()
            process = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", directory],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
            assert process.stdout is not None
            log = []
            for line in process.stdout:  # ends at EOF if the server exits
                log.append(line)
                if "Ready to accept connections" in line:
                    break
            else:
                process.wait()
                continue
            # Drain the rest of its log so the server never blocks on a full pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            yield f"redis://127.0.0.1:{port}/0"
            return
        raise RuntimeError("redis-server did not start:\n" + "".join(log[-20:]))
    finally:
        stop()


def fields(n: int) -> dict[str | bytes, bytes]:
    """The fields greenroom writes for message ``n`` (header and body), for the raw contender."""
    envelope = make_envelope("sink", Job(n=n))
    return {"h": encode_header(envelope), "b": encode_body(envelope.body)}


def parser() -> str:
    return "hiredis" if redis.utils.HIREDIS_AVAILABLE else "python"


# == part 1: one process, greenroom's mailbox beside raw redis.asyncio ===========


async def fresh_stream(client: redis.asyncio.Redis) -> str:
    stream = f"bench:{uuid.uuid4().hex}:s"
    await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    return stream


async def read_ack(client: redis.asyncio.Redis, stream: str, count: int) -> int:
    """One XREADGROUP of up to ``count``, then XACK + XDEL of what came, pipelined."""
    reply = await client.xreadgroup(GROUP, "c", {stream: ">"}, count=count)
    ids = [sid for _, entries in reply for sid, _ in entries]
    if ids:
        async with client.pipeline(transaction=False) as pipe:
            pipe.xack(stream, GROUP, *ids)
            pipe.xdel(stream, *ids)
            await pipe.execute()
    return len(ids)


async def raw_rates(client: redis.asyncio.Redis, total: int) -> dict[str, float]:
    """``raw`` (end to end), ``raw_xadd`` and ``raw_read_ack``: pipelines of ``BATCH``."""
    stream = await fresh_stream(client)
    batches = [[fields(n) for n in range(first, first + BATCH)] for first in range(0, total, BATCH)]
    h.settle()
    start = time.perf_counter()
    for batch in batches:
        async with client.pipeline(transaction=False) as pipe:
            for entry in batch:
                pipe.xadd(stream, entry)
            await pipe.execute()
        taken = 0
        while taken < BATCH:
            taken += await read_ack(client, stream, BATCH)
    end_to_end = total / (time.perf_counter() - start)

    stream = await fresh_stream(client)
    h.settle()
    start = time.perf_counter()
    for batch in batches:
        async with client.pipeline(transaction=False) as pipe:
            for entry in batch:
                pipe.xadd(stream, entry)
            await pipe.execute()
    middle = time.perf_counter()
    taken = 0
    while taken < total:
        taken += await read_ack(client, stream, BATCH)
    end = time.perf_counter()
    return {
        "raw": end_to_end,
        "raw_xadd": total / (middle - start),
        "raw_read_ack": total / (end - middle),
    }


async def raw_per_call_rates(client: redis.asyncio.Redis, total: int) -> dict[str, float]:
    """One message per call: an awaited XADD each; XREADGROUP count 1 then XACK + XDEL each."""
    stream = await fresh_stream(client)
    entries = [fields(n) for n in range(total)]
    h.settle()
    start = time.perf_counter()
    for entry in entries:
        await client.xadd(stream, entry)
    middle = time.perf_counter()
    taken = 0
    while taken < total:
        taken += await read_ack(client, stream, 1)
    end = time.perf_counter()
    return {
        "raw_xadd_per_call": total / (middle - start),
        "raw_read_ack_per_call": total / (end - middle),
    }


async def producers(total: int, send: Callable[[int], Any]) -> None:
    """``BATCH`` tasks, each awaiting ``send`` for its share of ``total`` messages."""
    per_task = total // BATCH

    async def produce(worker: int) -> None:
        for n in range(per_task):
            await send(worker * per_task + n)

    async with anyio.create_task_group() as tg:
        for worker in range(BATCH):
            tg.start_soon(produce, worker)


async def consume(box: RedisMailbox, total: int) -> None:
    """Take and ack ``total`` messages, waiting on the listener when the buffer is empty."""
    arrived = anyio.Event()

    def wake() -> None:
        arrived.set()

    box.set_listener(wake)
    taken = 0
    while taken < total:
        envelope = box.get_nowait()
        if envelope is None:
            arrived = anyio.Event()
            await arrived.wait()
            continue
        box.ack(envelope)
        taken += 1


def open_boxes(url: str) -> RedisMailboxes:
    return RedisMailboxes(url, prefix=f"bench:{uuid.uuid4().hex}:", batch=BATCH)


async def mailbox_rate(url: str, total: int) -> float:
    async with open_boxes(url) as boxes:
        box = boxes.create("sink", gr.MailboxConfig(capacity=4 * BATCH), (Job,))
        await boxes.flush()  # the group is created, outside the clock
        h.settle()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, box, total)
            await producers(total, lambda n: box.put(make_envelope("sink", Job(n=n))))
        await boxes.flush()
        return total / (time.perf_counter() - start)


async def mailbox_offer_rate(url: str, total: int) -> float:
    async with open_boxes(url) as boxes:
        box = boxes.create("sink", gr.MailboxConfig(capacity=4 * BATCH), (Job,))
        await boxes.flush()
        h.settle()
        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, box, total)
            for n in range(total):
                envelope = make_envelope("sink", Job(n=n))
                if not box.offer(envelope):
                    await box.put(envelope)
        await boxes.flush()
        return total / (time.perf_counter() - start)


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


async def runtime_rate(url: str, total: int) -> float:
    done = anyio.Event()
    async with (
        open_boxes(url) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}) as rt,
    ):
        ref = await rt.spawn(
            Sink, args=(total, done), mailbox=gr.MailboxConfig(kind="durable", capacity=4 * BATCH)
        )
        await boxes.flush()
        h.settle()
        start = time.perf_counter()
        await producers(total, lambda n: ref.tell(Job(n=n)))
        await done.wait()
        await boxes.flush()
        return total / (time.perf_counter() - start)


async def part1_round(url: str, total: int, per_call: int) -> dict[str, float]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        rates = await raw_rates(client, total)
        rates["mailbox"] = await mailbox_rate(url, total)
        rates.update(await raw_per_call_rates(client, per_call))
        rates["mailbox_offer"] = await mailbox_offer_rate(url, total)
        rates["runtime"] = await runtime_rate(url, total)
        await client.flushall()  # the next round starts on an empty server
    finally:
        await client.aclose()
    return rates


async def part1(url: str, args: h.BenchArgs) -> dict[str, Any]:
    """Measure and print part 1; return its figures for the JSON object."""
    total = 4_000 if args.quick else 20_000
    per_call = 1_000 if args.quick else 4_000
    await part1_round(url, total // 10, per_call // 10)  # warm-up
    rounds = [await part1_round(url, total, per_call) for _ in range(args.repeat)]
    rates = {name: h.median([r[name] for r in rounds]) for name in rounds[0]}
    ratios = {
        "redis_mailbox_vs_raw": rates["mailbox"] / rates["raw"],
        "mailbox_offer_vs_raw": rates["mailbox_offer"] / rates["raw"],
        "runtime_vs_raw": rates["runtime"] / rates["raw"],
    }
    print(
        f"part 1: put + get + ack through one stream, batch {BATCH}, {total:,} messages per "
        f"figure ({per_call:,} per call), median of {args.repeat}"
    )
    order = [
        "raw", "raw_xadd", "raw_read_ack", "raw_xadd_per_call", "raw_read_ack_per_call",
        "mailbox", "mailbox_offer", "runtime",
    ]  # fmt: skip
    h.print_table(
        ["contender", "msg/s", "us/msg"],
        [[name, h.fmt_rate(rates[name]), h.fmt_us(rates[name])] for name in order],
    )
    print()
    h.print_table(["ratio", "x"], [[name, f"{ratio:.2f}"] for name, ratio in ratios.items()])
    ok = ratios["redis_mailbox_vs_raw"] >= TARGET_RATIO
    print(f"redis_mailbox_vs_raw {'meets' if ok else 'MISSES'} the target of {TARGET_RATIO}")
    return {
        "messages": total,
        "messages_per_call": per_call,
        "per_second": rates,
        "us_per_message": {name: 1e6 / rate for name, rate in rates.items()},
        "ratios": ratios,
        "targets": {"redis_mailbox_vs_raw": TARGET_RATIO},
    }


# == part 2: a keyed pool on 1, 2 and 3 node processes ===========================

SCALING_WORK_US = 100.0


def part2(url: str, args: h.BenchArgs) -> dict[str, Any]:
    """Measure and print part 2 (see benchmarks/_scaling.py); return its figures."""
    from _scaling import scaling_run

    total = 3_000 if args.quick else 20_000
    repeat = 1 if args.quick else args.repeat
    counts = (1, 2, 3)
    runs: dict[int, list[float]] = {n: [] for n in counts}
    for _ in range(repeat):
        for n in counts:  # interleaved, so a noisy spell hits every count
            runs[n].append(total / scaling_run(url, n, total, SCALING_WORK_US))
    rates = {n: h.median(values) for n, values in runs.items()}
    ratios = {f"scaling_{n}_vs_1": rates[n] / rates[1] for n in counts[1:]}
    print(
        f"part 2: a keyed pool of 12 partitions on 1, 2, 3 node processes, {total:,} "
        f"messages over 120 keys, {SCALING_WORK_US:.0f} us of CPU per handler, median of {repeat}"
    )
    h.print_table(
        ["nodes", "msg/s", "us/msg"],
        [[str(n), h.fmt_rate(rates[n]), h.fmt_us(rates[n])] for n in counts],
    )
    print()
    h.print_table(["ratio", "x"], [[name, f"{ratio:.2f}"] for name, ratio in ratios.items()])
    print(
        f"(this machine has {os.cpu_count()} cores, shared by the producer, redis-server and "
        "the nodes: past that many busy processes, more nodes only add contention)"
    )
    return {
        "messages": total,
        "work_us": SCALING_WORK_US,
        "per_second": {str(n): rate for n, rate in rates.items()},
        "ratios": ratios,
    }


async def main(args: h.BenchArgs) -> None:
    payload: dict[str, Any] = {
        "benchmark": "distributed",
        "mode": "quick" if args.quick else "full",
        "repeat": args.repeat,
        "batch": BATCH,
        "parser": parser(),
        "environment": h.environment(),
    }
    binary = shutil.which("redis-server")
    if binary is None:
        print("distributed: skipped, redis-server is not on PATH (apt-get install redis-server)")
        if args.json:
            h.emit_json({**payload, "skipped": "redis-server not found"})
        return
    print(
        f"distributed ({'quick' if args.quick else 'full'}), redis-py {redis.__version__} "
        f"with the {parser()} parser, on a redis-server of its own"
    )
    with redis_server(binary) as url:
        payload["part1"] = await part1(url, args)
        print()
        payload["part2"] = await anyio.to_thread.run_sync(part2, url, args)
    if args.json:
        h.emit_json(payload)


if __name__ == "__main__":
    anyio.run(main, h.parse_args(__doc__.splitlines()[0] if __doc__ else "distributed"))
