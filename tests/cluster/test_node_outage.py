"""A node rides out Redis being SIGKILLed and restarted (appendonly, fsync always).

While Redis is down the node's in-memory actors keep answering, calls that
need Redis raise MailboxUnavailable, and nothing hangs; when it is back the
node carries on by itself and every message Redis had accepted is handled.
"""

from __future__ import annotations

import anyio
import pytest

from greenroom import Actor, ChildSpec, Message, Runtime, handler
from greenroom.cluster import Node
from greenroom.mailbox import MailboxUnavailable, RedisMailboxes
from tests._redis_server import OwnedRedis

pytestmark = pytest.mark.anyio


class Step(Message, frozen=True):
    key: str
    seq: int


class Ping(Message, frozen=True):
    pass


class Echo(Actor):
    @handler
    async def ping(self, msg: Ping) -> str:
        return "pong"


class Tally:
    def __init__(self, expected: set[int]) -> None:
        self.expected = expected
        self.seen: list[tuple[str, int]] = []
        self.done = anyio.Event()

    def add(self, key: str, seq: int) -> None:
        self.seen.append((key, seq))
        if self.expected <= {s for _, s in self.seen}:
            self.done.set()


class Recorder(Actor):
    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    @handler
    async def step(self, msg: Step) -> None:
        self.tally.add(msg.key, msg.seq)


async def until_redis_answers(boxes: RedisMailboxes) -> None:
    """Wait on the pump's own retry cycles until one gets through."""
    while True:
        try:
            await boxes.flush()
            return
        except MailboxUnavailable:
            continue


async def test_a_node_rides_out_a_redis_restart() -> None:
    expected = set(range(40)) | set(range(100, 140))
    tally = Tally(expected)
    with OwnedRedis() as server:
        async with (
            RedisMailboxes(server.url, prefix="sys:", consumer="a", poll=0.01) as boxes,
            Runtime(mailboxes={"redis": boxes}) as rt,
            Node(rt, boxes, name="a", heartbeat=0.1, takeover=10.0) as node,
        ):
            echo = await rt.spawn(Echo, name="echo")  # a memory mailbox
            await node.host_pool("steps", ChildSpec(actor=Recorder, args=(tally,)), partitions=3)
            steps = await node.pool_ref("steps", key="key")
            for seq in range(40):
                await steps.tell(Step(key=f"k{seq % 4}", seq=seq))

            await anyio.to_thread.run_sync(server.kill)
            with anyio.fail_after(10):
                with pytest.raises(MailboxUnavailable):
                    await steps.tell(Step(key="k0", seq=999))
                with pytest.raises(MailboxUnavailable):
                    await node.members()
                with pytest.raises(MailboxUnavailable):
                    await node.pool_ref("steps")
                assert await echo.ask(Ping(), timeout=2) == "pong"
                await node.rebalance()  # logs the outage, raises nothing

            await anyio.to_thread.run_sync(server.start)
            with anyio.fail_after(20):
                await until_redis_answers(boxes)
                for seq in range(100, 140):
                    await steps.tell(Step(key=f"k{seq % 4}", seq=seq))
                await tally.done.wait()
                assert await node.members() == ["a"]
                await node.rebalance()
                assert node.hosted("steps") == frozenset(range(3))
    assert 999 not in {s for _, s in tally.seen}
    for key in ("k0", "k1", "k2", "k3"):
        firsts: list[int] = []
        for k, seq in tally.seen:
            if k == key and seq not in firsts:
                firsts.append(seq)
        assert firsts == sorted(firsts)


async def test_a_node_cut_off_longer_than_takeover_stops_its_partitions_then_takes_them_back() -> (
    None
):
    from loguru import logger

    tally = Tally({1, 2})
    fenced = anyio.Event()

    stopping: list[str] = []

    def watch(message: object) -> None:
        text = str(message)
        if "could not renew its leases" in text:
            stopping.append("fence")
        elif stopping and "stopped hosting steps/1" in text:  # stopped in order: 0, then 1
            fenced.set()

    logger.enable("greenroom")
    sink = logger.add(watch, level="INFO")
    try:
        with OwnedRedis() as server:
            async with (
                RedisMailboxes(server.url, prefix="sys:", consumer="a", poll=0.01) as boxes,
                Runtime(mailboxes={"redis": boxes}) as rt,
                Node(rt, boxes, name="a", heartbeat=0.05, takeover=0.5) as node,
            ):
                await node.host_pool(
                    "steps", ChildSpec(actor=Recorder, args=(tally,)), partitions=2
                )
                steps = await node.pool_ref("steps", key="key")
                await steps.tell(Step(key="k", seq=1))
                await anyio.to_thread.run_sync(server.kill)
                with anyio.fail_after(10):
                    await fenced.wait()  # the heartbeat loop fenced itself off
                assert node.hosted("steps") == frozenset()
                assert [c.id for c in await rt.ref("steps").which_children()] == []  # type: ignore[attr-defined]
                await anyio.to_thread.run_sync(server.start)
                with anyio.fail_after(20):
                    await until_redis_answers(boxes)
                    await steps.tell(Step(key="k", seq=2))
                    await tally.done.wait()  # taken back at a later beat, and handled
    finally:
        logger.remove(sink)
        logger.disable("greenroom")


async def test_a_node_leaves_without_hanging_or_raising_while_redis_is_down() -> None:
    tally = Tally({1})
    with OwnedRedis() as server:
        with anyio.fail_after(20):
            async with (
                RedisMailboxes(server.url, prefix="sys:", consumer="a", poll=0.01) as boxes,
                Runtime(mailboxes={"redis": boxes}) as rt,
                Node(rt, boxes, name="a", heartbeat=1.0, takeover=2.0) as node,
            ):
                await node.host_pool(
                    "steps", ChildSpec(actor=Recorder, args=(tally,)), partitions=2
                )
                steps = await node.pool_ref("steps", key="key")
                await steps.tell(Step(key="k", seq=1))
                await tally.done.wait()
                await anyio.to_thread.run_sync(server.kill)
                await node.leave()  # partitions stopped, leases left to expire
                assert node.hosted("steps") == frozenset()
                assert [c.id for c in await rt.ref("steps").which_children()] == []  # type: ignore[attr-defined]
