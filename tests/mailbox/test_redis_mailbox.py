"""What the Redis Streams mailbox adds to the protocol: incarnations, leases, dedupe, poison."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
import pytest
import redis.asyncio

import greenroom as gr
from greenroom.mailbox import MailboxUnavailable, RedisMailbox, RedisMailboxes
from tests._redis_server import free_port, redis_prefix, redis_url
from tests.mailbox._kinds import Item, env

pytestmark = pytest.mark.anyio


def seq_of(envelope: gr.Envelope) -> int:
    assert isinstance(envelope.body, Item)
    return envelope.body.seq


@asynccontextmanager
async def raw() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        yield client
    finally:
        await client.aclose()


def open_box(boxes: RedisMailboxes, capacity: int = 8) -> tuple[RedisMailbox, anyio.Event]:
    box = boxes.create("box", gr.MailboxConfig(capacity=capacity), (Item,))
    state = {"arrived": anyio.Event()}

    def listener() -> None:
        state["arrived"].set()

    box.set_listener(listener)
    return box, state["arrived"]


async def take(box: RedisMailbox, timeout: float = 5.0) -> gr.Envelope:
    """The next message, waiting on the listener (never a clock) for it to arrive."""
    with anyio.fail_after(timeout):
        while True:
            got = box.get_nowait()
            if got is not None:
                return got
            arrived = anyio.Event()
            box.set_listener(arrived.set)
            got = box.get_nowait()
            if got is not None:
                return got
            await arrived.wait()


async def test_close_leaves_messages_for_the_next_incarnation_with_one_more_attempt() -> None:
    prefix = redis_prefix()
    async with RedisMailboxes(redis_url(), prefix=prefix) as boxes:
        box, _ = open_box(boxes)
        for seq in range(3):
            await box.put(env(seq=seq))
        first = await take(box)
        assert seq_of(first) == 0
        assert box.close() == []
        again, _ = open_box(boxes)
        got = [await take(again) for _ in range(3)]
        assert [(seq_of(e), e.attempt) for e in got] == [(0, 2), (1, 1), (2, 1)]
        for envelope in got:
            again.ack(envelope)
        await boxes.flush()
        assert again.get_nowait() is None
        assert len(again) == 0
    async with raw() as client:  # acked: stream empty, no attempts or dedupe markers left
        assert await client.keys(f"{prefix}*") == [f"{prefix}{{box}}:s".encode()]
        assert await client.xlen(f"{prefix}{{box}}:s") == 0


async def test_a_restarted_process_with_the_same_consumer_gets_its_entries_back() -> None:
    prefix = redis_prefix()
    async with RedisMailboxes(redis_url(), prefix=prefix, consumer="node-1") as boxes:
        box, _ = open_box(boxes)
        await box.put(env(seq=1))
        requeued = await take(box)
        requeued.attempt += 1
        box.requeue(requeued)
    async with RedisMailboxes(redis_url(), prefix=prefix, consumer="node-1") as boxes:
        box, _ = open_box(boxes)
        got = await take(box)
        assert (seq_of(got), got.attempt) == (1, 2)


async def test_entries_of_a_dead_consumer_are_claimed_once_their_lease_expires() -> None:
    prefix = redis_prefix()
    async with RedisMailboxes(redis_url(), prefix=prefix, consumer="dead") as boxes:
        box, _ = open_box(boxes)
        await box.put(env(seq=5))
        await take(box)  # handed out, never acked: the process "dies" with it pending
    async with RedisMailboxes(redis_url(), prefix=prefix, lease=0.2, poll=0.01) as boxes:
        box, _ = open_box(boxes)
        got = await take(box)
        assert seq_of(got) == 5
        assert got.attempt == 2
        box.ack(got)
        await boxes.flush()
    async with raw() as client:
        assert await client.xlen(f"{prefix}{{box}}:s") == 0


async def test_an_envelope_sent_twice_is_stored_once() -> None:
    prefix = redis_prefix()
    sent = env(seq=9)
    async with (
        RedisMailboxes(redis_url(), prefix=prefix) as a,
        RedisMailboxes(redis_url(), prefix=prefix) as b,
    ):
        box_a, _ = open_box(a)
        await box_a.put(sent)
        assert seq_of(await take(box_a)) == 9  # leased to a: b, a competing consumer, never sees it
        box_b = b.create("box", gr.MailboxConfig(capacity=8), (Item,))
        await box_b.put(sent)
        await b.flush()
        assert len(box_b) == 0
    async with raw() as client:
        assert await client.xlen(f"{prefix}{{box}}:s") == 1


async def test_the_bound_holds_on_the_server_across_processes() -> None:
    prefix = redis_prefix()
    async with (
        RedisMailboxes(redis_url(), prefix=prefix) as a,
        RedisMailboxes(redis_url(), prefix=prefix) as b,
    ):
        box_a = a.create("box", gr.MailboxConfig(capacity=1), (Item,))
        await box_a.put(env(seq=1))
        await take(box_a)  # leased to a, still in the stream until acked
        box_b = b.create("box", gr.MailboxConfig(capacity=1), (Item,))
        with pytest.raises(gr.MailboxFull):
            await box_b.put(env(seq=2))
        assert len(box_b) == 0


async def test_poison_entries_go_to_the_dead_letter_stream_and_do_not_block_the_rest() -> None:
    prefix = redis_prefix()
    async with raw() as client:
        await client.xadd(f"{prefix}{{box}}:s", {"h": b"\xc1garbage", "b": b"x"})
        header = msgspec.msgpack.encode((42, None, None, None, 42, None, 1.0, None))
        await client.xadd(f"{prefix}{{box}}:s", {"h": header, "b": b"\x93\x01"})
        async with RedisMailboxes(redis_url(), prefix=prefix) as boxes:
            box, _ = open_box(boxes)
            await box.put(env(seq=3))
            got = await take(box)
            assert seq_of(got) == 3
            box.ack(got)
            await boxes.flush()
            await boxes.flush()
            letters = await client.xrange(boxes.dead_key)
            assert len(letters) == 2
            reasons = sorted(fields[b"reason"] for _, fields in letters)
            assert reasons == [b"invalid_message", b"invalid_message"]
            assert all(fields[b"actor"] == b"box" for _, fields in letters)
            assert await client.xlen(f"{prefix}{{box}}:s") == 0
            assert len(box) == 0


async def test_a_message_put_by_another_process_is_read_by_polling() -> None:
    prefix = redis_prefix()
    async with RedisMailboxes(redis_url(), prefix=prefix, poll=0.01) as boxes:
        box, _ = open_box(boxes)
        await boxes.flush()
        sent = env(seq=4)
        header = msgspec.msgpack.encode(
            (sent.id, None, None, None, sent.trace_id, None, sent.created_at, None)
        )
        async with raw() as client:
            await client.xadd(
                f"{prefix}{{box}}:s", {"h": header, "b": msgspec.msgpack.encode(sent.body)}
            )
        got = await take(box)
        assert (got.id, seq_of(got), got.attempt) == (sent.id, 4, 1)
        assert len(box) == 1
        box.ack(got)
        assert len(box) == 0


class Work(gr.Message):
    n: int


class Flaky(Exception):
    pass


class Worker(gr.Actor):
    """Fails the first attempt at ``Work(1)``; records what it handled with its attempt."""

    def __init__(self, seen: list[tuple[int, int]]) -> None:
        self.seen = seen

    @gr.handler
    async def work(self, msg: Work) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        if msg.n == 1 and envelope.attempt == 1:
            raise Flaky("first attempt")
        self.seen.append((msg.n, envelope.attempt))
        return msg.n * 10


async def test_an_actor_on_a_redis_mailbox_handles_tells_asks_and_retries() -> None:
    prefix = redis_prefix()
    seen: list[tuple[int, int]] = []
    durable = gr.MailboxConfig(kind="durable")
    async with (
        RedisMailboxes(redis_url(), prefix=prefix) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}) as rt,
    ):
        ref = await rt.spawn(Worker, name="w", args=(seen,), mailbox=durable)
        for n in range(5):
            await ref.tell(Work(n=n))
        assert await ref.ask(Work(n=5), timeout=5) == 50
        assert sorted(seen) == [(0, 1), (1, 2), (2, 1), (3, 1), (4, 1), (5, 1)]
        await boxes.flush()
    async with raw() as client:
        assert await client.xlen(f"{prefix}{{w}}:s") == 0


async def test_an_unreachable_redis_is_a_typed_error_on_open() -> None:
    redis_url()  # skips (or fails under GREENROOM_REQUIRE_SERVERS) without redis-server
    with pytest.raises(MailboxUnavailable) as info:
        async with RedisMailboxes(f"redis://127.0.0.1:{free_port()}/0"):
            pass
    assert info.value.operation == "connect"


async def test_flush_reads_what_another_process_put_without_waiting_for_the_poll() -> None:
    prefix = redis_prefix()
    async with RedisMailboxes(redis_url(), prefix=prefix, poll=30.0) as boxes:
        box, _ = open_box(boxes)
        await boxes.flush()
        sent = env(seq=5)
        header = msgspec.msgpack.encode(
            (sent.id, None, None, None, sent.trace_id, None, sent.created_at, None)
        )
        async with raw() as client:
            await client.xadd(
                f"{prefix}{{box}}:s", {"h": header, "b": msgspec.msgpack.encode(sent.body)}
            )
        with anyio.fail_after(5):  # far below the poll: only the flush reads it
            await boxes.flush()
        got = box.get_nowait()
        assert got is not None
        assert seq_of(got) == 5
