"""Idempotency keys and causation on the durable and Redis mailboxes.

A producer that re-sends after an ambiguous failure (a commit it did not
see confirmed, a Redis ``MailboxUnavailable``) re-sends with the same
``idempotency_key``: the re-send is the same envelope id, dropped while the
first is unacked and for the dedupe window after its ack. Causation ids
survive the trip through both backends, dead letters and redrives.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
import redis.asyncio

import greenroom as gr
from greenroom.mailbox import RedisMailboxes, SqliteMailboxes, keyed_id
from greenroom.mailbox._redis_mailbox_entries import encode_header, envelope_of
from greenroom.mailbox._sqlite_schema import MIGRATIONS
from tests._redis_server import redis_prefix, redis_url

pytestmark = pytest.mark.anyio

DURABLE = gr.MailboxConfig(kind="durable")
ONCE = gr.RetryPolicy(max_attempts=1)


class Job(gr.Message):
    n: int


class Handled:
    """Deliveries handled by ``Worker``: ``(n, envelope)``; wait for a count of them."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, gr.Envelope]] = []
        self._changed = anyio.Event()

    def add(self, n: int, envelope: gr.Envelope) -> None:
        self.seen.append((n, envelope))
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, n: int) -> None:
        """Until a delivery of ``Job(n)`` was handled (5 s at most)."""
        with anyio.fail_after(5):
            while not any(seen == n for seen, _ in self.seen):
                await self._changed.wait()

    @property
    def numbers(self) -> list[int]:
        return [n for n, _ in self.seen]


class Worker(gr.Actor):
    """Handles ``Job``s; fails those in ``fail`` (a dead letter with ONCE); ``Job(0)``
    waits for ``gate``."""

    def __init__(self, handled: Handled, fail: set[int], gate: anyio.Event | None = None):
        self.handled = handled
        self.fail = fail
        self.gate = gate

    @gr.handler
    async def job(self, msg: Job) -> int:
        if msg.n == 0 and self.gate is not None:
            await self.gate.wait()
        if msg.n in self.fail:
            raise ValueError(f"job {msg.n} fails")
        envelope = self.ctx.envelope
        assert envelope is not None
        self.handled.add(msg.n, envelope)
        return msg.n * 10


class Front(gr.Actor):
    """Forwards every job to ``w``."""

    @gr.handler
    async def job(self, msg: Job) -> None:
        await self.ctx.forward(self.ctx.runtime.ref("w"))


@asynccontextmanager
async def backend(kind: str, path: Path, **options: Any) -> AsyncIterator[Any]:
    if kind == "sqlite":
        async with SqliteMailboxes(path / "m.db", poll=0.05, lease=5.0, **options) as boxes:
            yield boxes
    else:
        prefix = options.pop("prefix", None) or redis_prefix()
        async with RedisMailboxes(redis_url(), prefix=prefix, **options) as boxes:
            yield boxes


@asynccontextmanager
async def running(boxes: Any) -> AsyncIterator[gr.Runtime]:
    config = gr.RuntimeConfig(default_mailbox="durable")
    async with gr.Runtime(
        config, mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters
    ) as rt:
        yield rt


KINDS = ["sqlite", "redis"]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_keyed_tell_resent_after_it_was_handled_is_dropped(
    kind: str, tmp_path: Path
) -> None:
    handled = Handled()
    async with backend(kind, tmp_path) as boxes, running(boxes) as rt:
        ref = await rt.spawn(Worker, name="w", args=(handled, set()))
        await ref.tell(Job(n=1), idempotency_key="job-1")
        await handled.wait_for(1)
        for _ in range(3):  # the producer did not see its first send confirmed
            await ref.tell(Job(n=1), idempotency_key="job-1")
        await ref.tell(Job(n=2))  # behind the re-sends (FIFO per sender)
        await handled.wait_for(2)
    assert handled.numbers == [1, 2]
    keyed = handled.seen[0][1]
    assert keyed.id == keyed_id("w", "job-1")
    assert keyed.causation == keyed.id
    assert keyed.remember_after_ack


@pytest.mark.parametrize("kind", KINDS)
async def test_a_keyed_tell_resent_while_it_is_pending_is_dropped(
    kind: str, tmp_path: Path
) -> None:
    handled = Handled()
    gate = anyio.Event()
    async with backend(kind, tmp_path) as boxes, running(boxes) as rt:
        ref = await rt.spawn(Worker, name="w", args=(handled, set(), gate))
        await ref.tell(Job(n=0))  # holds the worker until the gate opens
        for _ in range(3):
            await ref.tell(Job(n=1), idempotency_key="job-1")
        await ref.tell(Job(n=2))
        gate.set()
        await handled.wait_for(2)
    assert handled.numbers == [0, 1, 2]


async def test_a_keyed_tell_is_remembered_across_restarts_of_the_process(tmp_path: Path) -> None:
    handled = Handled()
    async with backend("sqlite", tmp_path) as boxes, running(boxes) as rt:
        ref = await rt.spawn(Worker, name="w", args=(handled, set()))
        await ref.tell(Job(n=1), idempotency_key="job-1")
        await handled.wait_for(1)
    # The next run re-sends what the last one may not have seen committed.
    async with backend("sqlite", tmp_path) as boxes, running(boxes) as rt:
        ref = await rt.spawn(Worker, name="w", args=(handled, set()))
        await ref.tell(Job(n=1), idempotency_key="job-1")
        await ref.tell(Job(n=2))
        await handled.wait_for(2)
    assert handled.numbers == [1, 2]


async def test_past_the_sqlite_dedupe_window_a_keyed_tell_is_delivered_again(
    tmp_path: Path,
) -> None:
    handled = Handled()
    async with backend("sqlite", tmp_path, dedupe_window=0.0) as boxes, running(boxes) as rt:
        ref = await rt.spawn(Worker, name="w", args=(handled, set()))
        await ref.tell(Job(n=1), idempotency_key="job-1")
        await handled.wait_for(1)
        await boxes.flush()
        acked = "SELECT count(*) FROM greenroom_mailbox_acked"
        with sqlite3.connect(tmp_path / "m.db") as db:
            assert db.execute(acked).fetchone() == (1,)
        boxes._writer.tick_due = True  # the lease ticker's next turn prunes the window
        await boxes.flush()
        with sqlite3.connect(tmp_path / "m.db") as db:
            assert db.execute(acked).fetchone() == (0,)
        await ref.tell(Job(n=1), idempotency_key="job-1")
        await ref.tell(Job(n=2))
        await handled.wait_for(2)
    assert handled.numbers == [1, 1, 2]


async def test_a_redis_keyed_tell_is_remembered_dedupe_ttl_after_its_ack(tmp_path: Path) -> None:
    handled = Handled()
    prefix = redis_prefix()
    async with (
        backend("redis", tmp_path, prefix=prefix, dedupe_ttl=60.0) as boxes,
        running(boxes) as rt,
    ):
        ref = await rt.spawn(Worker, name="w", args=(handled, set()))
        await ref.tell(Job(n=1), idempotency_key="job-1")
        await ref.tell(Job(n=2))  # not keyed: its marker goes with its ack
        await handled.wait_for(2)
        await boxes.flush()
        await boxes.flush()  # the acks are written by the cycle after the handling
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        marker = f"{prefix}{{w}}:d:{keyed_id('w', 'job-1')}"
        assert await client.get(marker) == b"a"
        assert 55_000 < await client.pttl(marker) <= 60_000
        plain = f"{prefix}{{w}}:d:{handled.seen[1][1].id}"
        assert await client.exists(plain) == 0
    finally:
        await client.aclose()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_keyed_ask_resent_after_it_was_handled_is_answered_again(
    kind: str, tmp_path: Path
) -> None:
    handled = Handled()
    async with backend(kind, tmp_path) as boxes, running(boxes) as rt:
        ref = await rt.spawn(Worker, name="w", args=(handled, set()))
        assert await ref.ask(Job(n=3), timeout=5, idempotency_key="ask-3") == 30
        # Not dropped (the asker would wait in vain): handled again, its
        # ledger steps answered from their receipts (tests/tools).
        assert await ref.ask(Job(n=3), timeout=5, idempotency_key="ask-3") == 30
    assert handled.numbers == [3, 3]
    first, again = (envelope for _, envelope in handled.seen)
    assert first.id == again.id == keyed_id("w", "ask-3")
    assert not first.remember_after_ack


@pytest.mark.parametrize("kind", KINDS)
async def test_a_redriven_keyed_tell_is_delivered_though_its_id_is_remembered(
    kind: str, tmp_path: Path
) -> None:
    handled = Handled()
    fail = {5}
    async with backend(kind, tmp_path) as boxes, running(boxes) as rt:
        ref = await rt.spawn(Worker, name="w", args=(handled, fail), retry=ONCE)
        await ref.tell(Job(n=5), idempotency_key="job-5")
        await ref.tell(Job(n=6))
        await handled.wait_for(6)
        with anyio.fail_after(5):
            while not (letters := await boxes.dead_letters.query(actor="w")):
                await boxes.flush()
        [letter] = letters
        assert letter.letter.envelope.causation_id == keyed_id("w", "job-5")
        await ref.tell(Job(n=5), idempotency_key="job-5")  # remembered: dropped
        fail.clear()  # "fix the handler", then redrive
        [outcome] = await boxes.dead_letters.redrive([letter.id])
        assert outcome.status == "redriven"
        await handled.wait_for(5)
        await ref.tell(Job(n=7))
        await handled.wait_for(7)
    assert handled.numbers == [6, 5, 7]
    redriven = handled.seen[1][1]
    assert redriven.causation_id == redriven.id == keyed_id("w", "job-5")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_forwarded_envelope_keeps_its_causation_through_the_mailbox(
    kind: str, tmp_path: Path
) -> None:
    handled = Handled()
    async with backend(kind, tmp_path) as boxes, running(boxes) as rt:
        await rt.spawn(Worker, name="w", args=(handled, set()))
        front = await rt.spawn(Front, name="front")
        assert await front.ask(Job(n=8), timeout=5) == 80
        await front.tell(Job(n=9), idempotency_key="job-9")
        await handled.wait_for(9)
    (_, asked), (_, told) = handled.seen
    assert asked.causation_id is not None
    assert asked.causation_id != asked.id
    assert told.causation_id == keyed_id("front", "job-9") != told.id
    assert not told.remember_after_ack  # the forward is not the keyed tell


async def test_an_old_durable_database_is_migrated_and_its_messages_delivered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    with sqlite3.connect(path) as db:  # a mailbox file written before migration 2
        db.execute(
            "CREATE TABLE greenroom_mailbox_schema "
            "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
        )
        for statement in MIGRATIONS[0][1]:
            db.execute(statement)
        db.execute("INSERT INTO greenroom_mailbox_schema VALUES (1, 0.0)")
        db.execute(
            "INSERT INTO greenroom_mailbox_messages (actor, id, trace_id, attempt, created_at, "
            "body) VALUES ('w', 77, 77, 1, 0.0, ?)",
            (msgspec.msgpack.encode(Job(n=4)),),
        )
    handled = Handled()
    async with backend("sqlite", tmp_path) as boxes, running(boxes) as rt:
        await rt.spawn(Worker, name="w", args=(handled, set()))
        await handled.wait_for(4)
    [(_, envelope)] = handled.seen
    assert (envelope.id, envelope.causation_id, envelope.causation) == (77, None, 77)


def test_a_header_without_causation_is_the_old_eight_fields_and_both_decode() -> None:
    old = gr.Envelope(id=1, recipient="w", body=None, trace_id=2, created_at=3.0)
    header = encode_header(old)
    assert len(msgspec.msgpack.decode(header)) == 8  # readable by an older greenroom
    assert envelope_of(header, "w", None).causation_id is None
    forwarded = gr.Envelope(id=1, recipient="w", body=None, trace_id=2, created_at=3.0)
    forwarded.causation_id = 9
    assert envelope_of(encode_header(forwarded), "w", None).causation == 9
