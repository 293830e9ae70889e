"""Redis killed and restarted under RedisMailboxes: typed errors while down, nothing lost after.

Each test runs its own redis-server (append-only, synced on every write)
so it can SIGKILL it and start it again on the same port and directory.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pytest
import redis.asyncio
from loguru import logger

import greenroom as gr
from greenroom.mailbox import MailboxUnavailable, RedisMailbox, RedisMailboxes
from tests._redis_server import OwnedRedis, redis_prefix
from tests.mailbox._kinds import Item, env

pytestmark = pytest.mark.anyio


class Logs:
    """The pump's log records for one prefix, and events to wait on them."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.records: list[tuple[str, str, dict[str, Any]]] = []  # (level, event, extra)
        self.changed = anyio.Event()

    def __call__(self, message: Any) -> None:
        record = message.record
        extra = record["extra"]
        if extra.get("prefix") == self.prefix:
            self.records.append((record["level"].name, extra.get("event", ""), dict(extra)))
            self.changed.set()
            self.changed = anyio.Event()

    def events(self, event: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [r for r in self.records if r[1] == event]

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        with anyio.fail_after(timeout):
            while True:
                changed = self.changed
                if predicate():
                    return
                await changed.wait()


@contextmanager
def pump_logs(prefix: str) -> Iterator[Logs]:
    logs = Logs(prefix)
    logger.enable("greenroom")
    sink = logger.add(logs, level="DEBUG", format="{message}")
    try:
        yield logs
    finally:
        logger.remove(sink)
        logger.disable("greenroom")


class Work(gr.Message):
    n: int


class Ping(gr.Message):
    pass


class Progress:
    """Something that grows (handled messages, accepted puts), and a way to wait for it."""

    def __init__(self) -> None:
        self.changed = anyio.Event()

    def bump(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    async def until(self, predicate: Callable[[], bool], timeout: float) -> None:
        with anyio.fail_after(timeout):
            while True:
                changed = self.changed
                if predicate():
                    return
                await changed.wait()


class Recorder(gr.Actor):
    """Counts what it handles; holds at message ``hold_at`` until ``gate`` is set."""

    def __init__(
        self, counts: Counter[int], progress: Progress, hold_at: int, gate: anyio.Event
    ) -> None:
        self.counts = counts
        self.progress = progress
        self.hold_at = hold_at
        self.gate = gate

    @gr.handler
    async def work(self, msg: Work) -> None:
        if msg.n == self.hold_at:
            await self.gate.wait()
        self.counts[msg.n] += 1
        self.progress.bump()


class Echo(gr.Actor):
    @gr.handler
    async def ping(self, msg: Ping) -> str:
        return "pong"


TOTAL = 600  # messages the producer tries to send, before, during and after the outage
HOLD_AT = 100  # the recorder holds here, so messages queue up in Redis and the buffer
CAPACITY = 64


async def test_a_redis_restart_loses_no_accepted_message_and_recovers_by_itself() -> None:
    prefix = redis_prefix()
    progress = Progress()
    counts: Counter[int] = Counter()  # handled: message number -> times
    gate = anyio.Event()
    attempted: list[int] = []  # numbers the producer began to put
    accepted: list[int] = []  # numbers whose put returned
    refused: list[int] = []  # numbers whose put raised MailboxUnavailable
    recovered = anyio.Event()
    with OwnedRedis() as server, pump_logs(prefix) as logs:
        durable = gr.MailboxConfig(kind="durable", capacity=CAPACITY)
        async with (
            RedisMailboxes(server.url, prefix=prefix, poll=0.01) as boxes,
            gr.Runtime(mailboxes={"durable": boxes}) as rt,
        ):
            args = (counts, progress, HOLD_AT, gate)
            sink = await rt.spawn(Recorder, name="sink", args=args, mailbox=durable)
            echo = await rt.spawn(Echo, name="echo")  # a memory mailbox

            async def produce() -> None:
                for n in range(TOTAL):
                    attempted.append(n)
                    try:
                        await sink.tell(Work(n=n))
                    except MailboxUnavailable:
                        refused.append(n)
                        await recovered.wait()  # bounded by the test's own deadlines below
                    else:
                        accepted.append(n)
                        progress.bump()

            async with anyio.create_task_group() as producers:
                producers.start_soon(produce)
                # Midway: the recorder holds, dozens of messages wait in Redis and the buffer.
                await progress.until(lambda: len(accepted) >= HOLD_AT + CAPACITY // 2, timeout=5)
                server.kill()
                sent_before_kill = set(attempted)
                gate.set()

                # Down: whoever needs Redis gets a typed error at once, memory actors
                # answer, and buffered messages are handled (their acks queued).
                with anyio.fail_after(1):
                    with pytest.raises(MailboxUnavailable):
                        await sink.tell(Work(n=-1))
                    with pytest.raises(MailboxUnavailable):
                        await sink.ask(Work(n=-2), timeout=5)
                    assert await echo.ask(Ping(), timeout=1) == "pong"
                await progress.until(lambda: len(counts) > HOLD_AT + CAPACITY // 4, timeout=2)
                # Several retries fail, with a growing backoff, and only one warning.
                await logs.until(lambda: len(logs.events("redis_retry")) >= 3)
                delays = [extra["delay"] for _, _, extra in logs.events("redis_retry")]
                assert delays[:3] == [0.05, 0.1, 0.2]
                assert await echo.ask(Ping(), timeout=1) == "pong"
                assert refused, "the producer saw no MailboxUnavailable while Redis was down"

                await anyio.to_thread.run_sync(server.restart)
                await logs.until(lambda: bool(logs.events("redis_recovered")))
                recovered.set()
            assert len(accepted) + len(refused) == TOTAL
            assert len(accepted) > TOTAL // 2

            # Every message whose put returned was handled; only messages in
            # flight at the kill may have been handled twice (at-least-once).
            await progress.until(lambda: set(accepted) <= counts.keys(), timeout=10)
            twice = {n for n, times in counts.items() if times > 1}
            assert twice <= sent_before_kill

            # Every ack was written, those made while Redis was down included.
            await boxes.flush()
            client = redis.asyncio.Redis.from_url(server.url)
            try:
                stream = f"{prefix}{{sink}}:s"
                assert await client.xlen(stream) == 0
                assert (await client.xpending(stream, "greenroom"))["pending"] == 0
            finally:
                await client.aclose()

    levels = [(level, event) for level, event, _ in logs.records if event != "redis_retry"]
    assert levels == [("WARNING", "redis_unavailable"), ("INFO", "redis_recovered")]


def open_box(boxes: RedisMailboxes) -> RedisMailbox:
    return boxes.create("box", gr.MailboxConfig(capacity=8), (Item,))


async def take(box: RedisMailbox, timeout: float = 5.0) -> gr.Envelope:
    """The next message, waiting on the mailbox's listener (never a clock)."""
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


def seq_of(envelope: gr.Envelope) -> int:
    assert isinstance(envelope.body, Item)
    return envelope.body.seq


async def test_acks_attempts_and_tells_queued_while_redis_is_down_are_written_when_it_returns() -> (
    None
):
    prefix = redis_prefix()
    with OwnedRedis() as server:
        async with RedisMailboxes(server.url, prefix=prefix, poll=0.01) as boxes:
            box = open_box(boxes)
            await box.put(env(seq=1))
            await box.put(env(seq=2))
            first, second = await take(box), await take(box)
            server.kill()
            box.ack(second)  # queued: written on recovery, so seq 2 never comes back
            assert box.offer(env(seq=3))  # fire-and-forget: kept for recovery
            with anyio.fail_after(1), pytest.raises(MailboxUnavailable):
                await box.put(env(seq=4))  # awaited: refused at once
            with anyio.fail_after(3), pytest.raises(MailboxUnavailable):
                await boxes.flush()  # fails with the next retry
            turns: list[str] = []
            asyncio.get_running_loop().call_soon(turns.append, "loop ran")
            with pytest.raises(MailboxUnavailable):
                await box.put(env(seq=4))
            assert turns == ["loop ran"]  # refused at once, yet the await yielded
            box.close()  # seq 1 was handed out: its next delivery is attempt 2
            assert seq_of(first) == 1

            await anyio.to_thread.run_sync(server.restart)
            again = open_box(boxes)
            with anyio.fail_after(5):
                while True:  # a plain retry loop: each refusal yields, so the pump recovers
                    try:
                        await again.put(env(seq=5))
                        break
                    except MailboxUnavailable:
                        continue
            got = [await take(again) for _ in range(3)]
            assert [(seq_of(e), e.attempt) for e in got] == [(1, 2), (3, 1), (5, 1)]
            for envelope in got:
                again.ack(envelope)
            await boxes.flush()
            assert again.get_nowait() is None
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            assert await client.xlen(f"{prefix}{{box}}:s") == 0
        finally:
            await client.aclose()


async def test_closing_while_redis_is_down_returns_at_once() -> None:
    with OwnedRedis() as server:
        with anyio.fail_after(2):
            async with RedisMailboxes(server.url, prefix=redis_prefix(), poll=0.01) as boxes:
                box = open_box(boxes)
                await box.put(env(seq=1))
                got = await take(box)
                server.kill()
                box.ack(got)
                assert box.offer(env(seq=2))
        assert box.closed
