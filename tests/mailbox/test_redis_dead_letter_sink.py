"""RedisDeadLetterSink: the runtime's dead letters in the Redis dead-letter stream.

Letters are made by a real runtime (a handler that fails past its retry
policy, an unknown message), on Redis and memory mailboxes, and read back
through the sink's own ``query`` and a separate :class:`RedisDeadLetters`,
as ``greenroom dlq --redis`` does.
"""

from __future__ import annotations

import anyio
import pytest
import redis.asyncio

import greenroom as gr
from greenroom.cluster import Node, serve_node
from greenroom.mailbox import (
    MailboxUnavailable,
    RedisDeadLetters,
    RedisMailboxes,
    make_envelope,
)
from tests._redis_server import OwnedRedis, redis_prefix, redis_url

pytestmark = pytest.mark.anyio

RETRY = gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=0.0, jitter=0.0))
DURABLE = gr.MailboxConfig(kind="durable")


class Charge(gr.Message):
    order: str


class Unknown(gr.Message):
    pass


class Till:
    """Whether the price list is fixed, and what was handled: (envelope id, trace id, attempt)."""

    def __init__(self) -> None:
        self.fixed = False
        self.handled: list[tuple[int, int, int]] = []
        self.done = anyio.Event()


class Billing(gr.Actor):
    def __init__(self, till: Till) -> None:
        self.till = till

    @gr.handler
    async def charge(self, msg: Charge) -> str:
        if not self.till.fixed:
            raise ValueError(f"no price list for {msg.order}")
        envelope = self.ctx.envelope
        assert envelope is not None
        self.till.handled.append((envelope.id, envelope.trace_id, envelope.attempt))
        self.till.done.set()
        return msg.order


async def stream_length(url: str, key: str) -> int:
    client = redis.asyncio.Redis.from_url(url)
    try:
        return int(await client.xlen(key))
    finally:
        await client.aclose()


async def test_a_handler_failure_past_its_retries_is_redriven_to_the_fixed_running_actor() -> None:
    prefix, till = redis_prefix(), Till()
    # A long poll: the redriven entry is read at once only because the sink wakes the pump.
    async with (
        RedisMailboxes(redis_url(), prefix=prefix, poll=30.0) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(Billing, name="billing", args=(till,), mailbox=DURABLE, retry=RETRY)
        with pytest.raises(gr.HandlerError):
            await ref.ask(Charge(order="A-1"), timeout=5)
        await boxes.flush()  # the ack and the letter, in one write

        [record] = await boxes.dead_letters.query(actor="billing")
        letter = record.letter
        assert (letter.reason, letter.envelope.attempt) == ("handler_failed", 2)
        assert (letter.error.type, letter.error.message) == ("ValueError", "no price list for A-1")
        assert letter.error.traceback is not None
        assert "ValueError" in letter.error.traceback
        assert letter.envelope.body == {"type": "Charge", "order": "A-1"}
        assert [dl.reason for dl in rt.dead_letters.list(actor="billing")] == ["handler_failed"]
        assert await stream_length(redis_url(), f"{prefix}{{billing}}:s") == 0

        till.fixed = True
        [outcome] = await boxes.dead_letters.redrive([record.id])
        assert (outcome.status, outcome.envelope_id) == ("redriven", letter.envelope.id)
        with anyio.fail_after(5):
            await till.done.wait()
        assert till.handled == [(letter.envelope.id, letter.envelope.trace_id, 1)]
        await boxes.flush()
        assert await boxes.dead_letters.query() == []
    assert await stream_length(redis_url(), f"{prefix}{{billing}}:s") == 0


async def test_a_memory_mailbox_actors_dead_letters_go_to_the_same_stream() -> None:
    prefix, till = redis_prefix(), Till()
    async with (
        RedisMailboxes(redis_url(), prefix=prefix) as boxes,
        gr.Runtime(dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(Billing, name="memory", args=(till,), retry=RETRY)
        await ref.tell(Unknown())
        with pytest.raises(gr.HandlerError):  # after the tell: FIFO per sender
            await ref.ask(Charge(order="M-1"), timeout=5)
        await boxes.flush()
    async with RedisDeadLetters(redis_url(), prefix=prefix) as letters:
        records = await letters.query(actor="memory")
        assert [(r.letter.reason, r.letter.error.type) for r in records] == [
            ("unknown_message", "greenroom.UnknownMessage"),
            ("handler_failed", "ValueError"),
        ]
        assert records[1].letter.envelope.attempt == 2
        assert await letters.purge(actor="memory") == 2
        assert await letters.query() == []


async def test_a_letter_whose_body_cannot_be_encoded_is_still_kept() -> None:
    prefix = redis_prefix()
    async with RedisMailboxes(redis_url(), prefix=prefix) as boxes:
        envelope = make_envelope("odd", object())
        boxes.dead_letters.add(
            gr.DeadLetter(
                envelope=envelope,
                actor="odd",
                reason="invalid_message",
                error=gr.ErrorInfo(type="ValueError", message="bad \udcff text"),
            )
        )
        await boxes.flush()
        [record] = await boxes.dead_letters.query()
    body = record.letter.envelope.body
    assert isinstance(body, str)
    assert body.startswith("<unencodable object: <object object")
    assert record.letter.error.message == "bad \\udcff text"  # a lone surrogate, escaped
    assert (record.letter.envelope.id, record.letter.envelope.trace_id) == (
        envelope.id,
        envelope.trace_id,
    )
    assert boxes.dead_letters.dropped == 0


async def test_a_letter_added_after_the_mailboxes_closed_is_dropped_and_counted() -> None:
    prefix = redis_prefix()
    async with RedisMailboxes(redis_url(), prefix=prefix) as boxes:
        pass
    letter = gr.DeadLetter(
        envelope=make_envelope("late", Charge(order="L-1")),
        actor="late",
        reason="actor_stopped",
        error=gr.ErrorInfo(type="ActorStopped", message="late"),
    )
    boxes.dead_letters.add(letter)  # never raises
    assert (boxes.dead_letters.dropped, boxes.dead_letters.total) == (1, 1)
    assert await stream_length(redis_url(), f"{prefix}dead") == 0


async def test_letters_made_while_redis_is_down_are_written_when_it_returns() -> None:
    prefix, till = redis_prefix(), Till()
    with OwnedRedis() as server:
        async with (
            RedisMailboxes(server.url, prefix=prefix, poll=0.01) as boxes,
            gr.Runtime(dead_letters=boxes.dead_letters) as rt,
        ):
            ref = await rt.spawn(Billing, name="memory", args=(till,), retry=RETRY)
            server.kill()
            with pytest.raises(gr.HandlerError):  # a memory mailbox works without Redis
                await ref.ask(Charge(order="D-1"), timeout=5)
            with anyio.fail_after(3), pytest.raises(MailboxUnavailable):
                await boxes.flush()  # the letter waits for Redis
            await anyio.to_thread.run_sync(server.restart)
            with anyio.fail_after(10):
                while True:  # each failed flush waits for the pump's next retry
                    try:
                        await boxes.flush()
                        break
                    except MailboxUnavailable:
                        continue
            [record] = await boxes.dead_letters.query()
            assert (record.letter.actor, record.letter.reason) == ("memory", "handler_failed")
            assert boxes.dead_letters.dropped == 0


async def test_serve_node_sends_its_runtimes_dead_letters_to_the_systems_stream() -> None:
    system = redis_prefix().rstrip(":")
    till = Till()
    ready = anyio.Event()
    nodes: list[Node] = []
    refs: list[gr.ActorRef] = []

    async def setup(node: Node) -> None:
        refs.append(await node.runtime.spawn(Billing, name="billing", args=(till,), retry=RETRY))

    def joined(node: Node) -> None:
        nodes.append(node)
        ready.set()

    async def serve() -> None:
        await serve_node(setup, url=redis_url(), system=system, signals=(), ready=joined)

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(10):
            await ready.wait()
        with pytest.raises(gr.HandlerError):
            await refs[0].ask(Charge(order="N-1"), timeout=5)
        await nodes[0].mailboxes.flush()
        tg.cancel_scope.cancel()
    async with RedisDeadLetters(redis_url(), prefix=f"{system}:") as letters:
        [record] = await letters.query()
    assert (record.letter.actor, record.letter.reason) == ("billing", "handler_failed")
