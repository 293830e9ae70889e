"""A Redis entry that repeats the envelope id of one the mailbox holds is never left pending.

Same id and same body: a duplicate (a re-send after the dedupe marker
expired, a copy made by other code): it is acked and counted, and the held
one is delivered once. Same id, another body: ids are unique, so one of the
two is not what its producer meant; the later one is dead-lettered as an
``EnvelopeIdConflict`` (kept, never delivered in place of the held one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import msgspec
import pytest
import redis.asyncio

import greenroom as gr
from greenroom.mailbox import RedisMailbox, RedisMailboxes
from greenroom.mailbox._redis_mailbox_entries import encode_header
from tests._redis_server import redis_prefix, redis_url
from tests.mailbox._kinds import Item, env

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def raw() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        yield client
    finally:
        await client.aclose()


async def take(box: RedisMailbox, timeout: float = 5.0) -> gr.Envelope:
    """The next message, waiting on the listener (never a clock) for it to arrive."""
    with anyio.fail_after(timeout):
        while True:
            arrived = anyio.Event()
            box.set_listener(arrived.set)
            got = box.get_nowait()
            if got is not None:
                return got
            await arrived.wait()


def fields_of(envelope: gr.Envelope, body: gr.Message | None = None) -> dict[bytes, bytes]:
    """The entry a put writes for ``envelope`` (with ``body`` in place of its own)."""
    return {
        b"h": encode_header(envelope),
        b"b": msgspec.msgpack.encode(envelope.body if body is None else body),
    }


async def pending(client: redis.asyncio.Redis, stream: str) -> int:
    summary = await client.xpending(stream, "greenroom")
    return int(summary["pending"])


async def settled(boxes: RedisMailboxes, client: redis.asyncio.Redis, stream: str) -> None:
    """Wait, pump cycle by pump cycle, until the stream holds one entry, pending (the held one)."""
    with anyio.fail_after(5):
        while True:
            await boxes.flush()
            if await client.xlen(stream) == 1 and await pending(client, stream) == 1:
                await boxes.flush()  # the dead letters written with the last acks
                return


async def test_an_entry_repeating_a_held_envelope_is_acked_as_a_duplicate() -> None:
    prefix = redis_prefix()
    stream = f"{prefix}{{box}}:s"
    sent = env(seq=1)
    async with raw() as client, RedisMailboxes(redis_url(), prefix=prefix, poll=0.01) as boxes:
        box = boxes.create("box", gr.MailboxConfig(capacity=8), (Item,))
        await box.put(sent)
        got = await take(box)
        assert got.id == sent.id
        await client.xadd(stream, fields_of(sent))  # type: ignore[arg-type]
        await settled(boxes, client, stream)
        assert boxes.duplicates == 1
        assert box.get_nowait() is None
        assert len(box) == 1
        assert await client.xlen(boxes.dead_key) == 0
        # The held one's dedupe marker stays: a re-send of it is still refused.
        assert await client.exists(f"{prefix}{{box}}:d:{sent.id}") == 1
        box.ack(got)
        with anyio.fail_after(5):
            while await client.xlen(stream):
                await boxes.flush()
        assert len(box) == 0


async def test_an_entry_repeating_a_held_id_with_another_body_is_a_conflict_letter() -> None:
    prefix = redis_prefix()
    stream = f"{prefix}{{box}}:s"
    sent = env(seq=1)
    async with raw() as client, RedisMailboxes(redis_url(), prefix=prefix, poll=0.01) as boxes:
        box = boxes.create("box", gr.MailboxConfig(capacity=8), (Item,))
        await box.put(sent)
        got = await take(box)
        other = fields_of(sent, Item(sender=0, seq=99))
        conflict_sid = await client.xadd(stream, other)  # type: ignore[arg-type]
        await settled(boxes, client, stream)
        letters = await client.xrange(boxes.dead_key)
        assert len(letters) == 1
        letter = letters[0][1]
        assert letter[b"error_type"] == b"greenroom.EnvelopeIdConflict"
        assert letter[b"reason"] == b"invalid_message"
        assert letter[b"id"] == conflict_sid
        assert (letter[b"h"], letter[b"b"]) == (other[b"h"], other[b"b"])  # kept as it was
        assert str(sent.id).encode() in letter[b"error"]
        assert boxes.duplicates == 0
        assert box.get_nowait() is None
        assert len(box) == 1
        box.ack(got)
        with anyio.fail_after(5):
            while await client.xlen(stream):
                await boxes.flush()


async def test_repeats_read_in_one_batch_are_told_apart() -> None:
    prefix = redis_prefix()
    stream = f"{prefix}{{box}}:s"
    sent = env(seq=1)
    async with raw() as client:
        await client.xadd(stream, fields_of(sent))  # type: ignore[arg-type]
        await client.xadd(stream, fields_of(sent))  # type: ignore[arg-type]
        await client.xadd(stream, fields_of(sent, Item(sender=0, seq=2)))  # type: ignore[arg-type]
        await client.xadd(stream, fields_of(env(seq=3)))  # type: ignore[arg-type]
        async with RedisMailboxes(redis_url(), prefix=prefix, poll=0.01) as boxes:
            box = boxes.create("box", gr.MailboxConfig(capacity=8), (Item,))
            first, second = await take(box), await take(box)
            assert first.id == sent.id
            assert isinstance(first.body, Item)
            assert first.body.seq == 1
            assert isinstance(second.body, Item)
            assert second.body.seq == 3
            box.ack(second)
            await settled(boxes, client, stream)
            assert boxes.duplicates == 1
            letters = await client.xrange(boxes.dead_key)
            assert [f[b"error_type"] for _, f in letters] == [b"greenroom.EnvelopeIdConflict"]
            assert box.get_nowait() is None
