"""Death watch across nodes: a partition worker watched from another node.

The nodes run in this process, each with its own runtime and Redis
mailboxes, on the session's redis-server. Most tests drive the heartbeats
themselves (``rebalance()``), so "nothing arrived" is checked after the
watching node's check ran, with an ask queued behind any Terminated.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

import greenroom as gr
from greenroom.cluster import Node
from greenroom.cluster._node import _stop_tasks
from greenroom.mailbox import RedisMailboxes
from tests._redis_server import redis_prefix, redis_url

pytestmark = pytest.mark.anyio


class Step(gr.Message):
    key: str
    crash: bool = False


class Worker(gr.Actor):
    @gr.handler
    async def step(self, msg: Step) -> str:
        if msg.crash:
            raise ValueError("crashed")
        return self.ctx.name


class Watch(gr.Message):
    pass


class Unwatch(gr.Message):
    pass


class Count(gr.Message):
    pass


class Watcher(gr.Actor):
    """Watches ``ref`` on request; collects every Terminated."""

    def __init__(self, ref: object, got: list[gr.Terminated], arrived: anyio.Event) -> None:
        self.ref = ref
        self.got = got
        self.arrived = arrived

    @gr.handler
    async def watch(self, msg: Watch) -> None:
        self.ctx.watch(self.ref)  # type: ignore[type-var]

    @gr.handler
    async def unwatch(self, msg: Unwatch) -> None:
        self.ctx.unwatch(self.ref)  # type: ignore[arg-type]

    @gr.handler
    async def terminated(self, msg: gr.Terminated) -> None:
        self.got.append(msg)
        self.arrived.set()

    @gr.handler
    async def count(self, msg: Count) -> int:
        return len(self.got)


@contextlib.asynccontextmanager
async def node_in(prefix: str, name: str, **options: float) -> AsyncIterator[Node]:
    options.setdefault("heartbeat", 30.0)  # the test drives rebalance() itself
    options.setdefault("takeover", 60.0)
    async with (
        RedisMailboxes(redis_url(), prefix=prefix, consumer=name) as boxes,
        gr.Runtime(mailboxes={"redis": boxes}) as rt,
        Node(rt, boxes, name=name, **options) as node,
    ):
        yield node


class Seen:
    def __init__(self) -> None:
        self.got: list[gr.Terminated] = []
        self.arrived = anyio.Event()

    async def first(self, timeout: float = 5.0) -> gr.Terminated:
        with anyio.fail_after(timeout):
            await self.arrived.wait()
        return self.got[0]


async def _watcher(node: Node, target: str, seen: Seen) -> gr.ActorRef:
    ref = node.ref(target)
    watcher = await node.runtime.spawn(Watcher, name="watcher", args=(ref, seen.got, seen.arrived))
    await watcher.ask(Watch())
    return watcher


async def test_a_remote_watch_gets_terminated_when_the_partition_stops_on_its_node() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with node_in(prefix, "a") as a:
        async with node_in(prefix, "b") as b:
            await b.host_pool("steps", Worker, partitions=2)
            assert await b.owners("steps") == {0: "b", 1: "b"}
            watcher = await _watcher(a, "steps/0", seen)
            await a.rebalance()
            assert await watcher.ask(Count()) == 0  # still running on b
        # b left: it gave the partition back and left the member set
        await a.rebalance()
        assert await seen.first() == gr.Terminated(actor="steps/0", reason="stopped", node="b")
        await a.rebalance()
        assert await watcher.ask(Count()) == 1


async def test_a_remote_watch_counts_a_lost_node_after_its_takeover() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with (
        node_in(prefix, "a", heartbeat=0.1, takeover=0.4) as a,
        node_in(prefix, "b", heartbeat=0.1, takeover=0.4) as b,
    ):
        await b.host_pool("steps", Worker, partitions=2)
        await _watcher(a, "steps/1", seen)
        # b freezes: no more heartbeats or lease renewals, and it never leaves
        # (its tasks stop; leave() then finds nothing to do).
        tasks, b._tasks = b._tasks, None
        assert tasks is not None
        await _stop_tasks(tasks, 5.0)
        frozen = anyio.current_time()
        got = await seen.first()
        assert got == gr.Terminated(actor="steps/1", reason="node_lost", node="b")
        assert anyio.current_time() - frozen >= 0.3  # not before the lease could expire
        assert seen.got == [got]


async def test_a_restart_on_the_remote_node_is_not_a_termination() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with node_in(prefix, "a") as a, node_in(prefix, "b") as b:
        await b.host_pool("steps", Worker, partitions=1)
        watcher = await _watcher(a, "steps/0", seen)
        steps = await a.pool_ref("steps", key="key")
        await steps.tell(Step(key="k", crash=True))
        assert await steps.ask(Step(key="k"), timeout=5) == "steps/0"  # restarted on b
        await a.rebalance()
        assert await watcher.ask(Count()) == 0


async def test_a_partition_this_node_stops_hosting_is_told_at_once() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with node_in(prefix, "a") as a:
        await a.host_pool("steps", Worker, partitions=2)
        watcher = await _watcher(a, "steps/1", seen)
        await a.rebalance()  # the watch has read its holder: a
        async with node_in(prefix, "b") as b:
            await b.host_pool("steps", Worker, partitions=2)
            await a.rebalance()  # a gives one partition back to b
            await b.rebalance()
            got = await seen.first()
            assert got == gr.Terminated(actor="steps/1", reason="stopped", node="a")
            assert await watcher.ask(Count()) == 1


async def test_watching_a_partition_nobody_holds_delivers_noproc() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with node_in(prefix, "a") as a:
        await _watcher(a, "nopool/0", seen)
        assert await seen.first() == gr.Terminated(actor="nopool/0", reason="noproc")


async def test_unwatch_stops_a_pending_remote_notification() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with node_in(prefix, "a") as a:
        async with node_in(prefix, "b") as b:
            await b.host_pool("steps", Worker, partitions=1)
            watcher = await _watcher(a, "steps/0", seen)
            await a.rebalance()
            await watcher.ask(Unwatch())
        await a.rebalance()  # the partition is gone: a kept watch would fire now
        assert await watcher.ask(Count()) == 0
        assert not a._watches.watches  # nothing kept


async def test_a_stopped_watcher_cancels_its_remote_watch() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with node_in(prefix, "a") as a, node_in(prefix, "b") as b:
        await b.host_pool("steps", Worker, partitions=1)
        await _watcher(a, "steps/0", seen)
        assert len(a._watches.watches) == 1
        await a.runtime.stop("watcher")
        assert not a._watches.watches


async def test_a_remote_watch_of_an_actor_that_is_not_a_partition_is_refused() -> None:
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a:
        refused: list[str] = []

        class Tries(gr.Actor):
            @gr.handler
            async def watch(self, msg: Watch) -> None:
                try:
                    self.ctx.watch(a.ref("billing"))
                except gr.UsageError as error:
                    refused.append(str(error))

            @gr.handler
            async def terminated(self, msg: gr.Terminated) -> None: ...

        tries = await a.runtime.spawn(Tries, name="tries")
        await tries.ask(Watch())
        await tries.ask(Watch())  # refused again: the first refusal kept nothing
        assert len(refused) == 2
        assert "<pool>/<partition>" in refused[0]
        assert "runtime.ref('billing')" in refused[0]


async def test_a_node_that_leaves_ends_its_watches_with_node_lost() -> None:
    prefix = redis_prefix()
    seen = Seen()
    async with node_in(prefix, "b") as b:
        await b.host_pool("steps", Worker, partitions=1)
        async with node_in(prefix, "a") as a:
            await _watcher(a, "steps/0", seen)
            await a.rebalance()
            await a.leave()
            got = await seen.first()
            assert got == gr.Terminated(actor="steps/0", reason="node_lost", node="b")
