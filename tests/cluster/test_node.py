"""Nodes of one system in one process, each with its own runtime and Redis mailboxes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import anyio.lowlevel
import pytest

from greenroom import Actor, ChildSpec, MailboxConfig, Message, Runtime, handler
from greenroom._errors import (
    ActorStopped,
    AskTimeout,
    ChildStartFailed,
    HandlerError,
    InvalidMessage,
    UnknownMessage,
    UsageError,
)
from greenroom.cluster import Node, RemoteError, UnknownPool, partition_of
from greenroom.mailbox import RedisMailboxes
from tests._redis_server import redis_prefix, redis_url

pytestmark = pytest.mark.anyio


class Charge(Message, frozen=True):
    account: str
    cents: int


class Refund(Message, frozen=True):
    account: str


class Step(Message, frozen=True):
    key: str
    seq: int


class Billing(Actor):
    """Answers a charge with a receipt dict; fails on a negative amount."""

    async def on_start(self) -> None:
        self.total = 0

    @handler
    async def charge(self, msg: Charge) -> dict[str, object]:
        if msg.cents < 0:
            raise ValueError(f"negative amount {msg.cents}")
        self.total += msg.cents
        return {"account": msg.account, "total": self.total}


SEEN: dict[str, list[tuple[str, int, str]]] = {}


class Recorder(Actor):
    """Records (key, seq, partition actor) into SEEN[test id]; returns its name."""

    def __init__(self, test: str) -> None:
        self.test = test

    @handler
    async def step(self, msg: Step) -> str:
        SEEN.setdefault(self.test, []).append((msg.key, msg.seq, self.ctx.name))
        return self.ctx.name


@contextlib.asynccontextmanager
async def node_in(prefix: str, name: str, **options: float) -> AsyncIterator[Node]:
    options.setdefault("heartbeat", 30.0)  # the test drives rebalance() itself
    options.setdefault("takeover", 60.0)
    async with (
        RedisMailboxes(redis_url(), prefix=prefix, consumer=name) as boxes,
        Runtime(mailboxes={"redis": boxes}) as rt,
        Node(rt, boxes, name=name, **options) as node,
    ):
        yield node


async def test_ask_and_tell_reach_an_actor_on_another_node() -> None:
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a, node_in(prefix, "b") as b:
        await a.runtime.spawn(Billing, name="billing", mailbox=MailboxConfig(kind="redis"))
        billing = b.ref("billing")
        assert await billing.ask(Charge(account="x", cents=5), timeout=5) == {
            "account": "x",
            "total": 5,
        }
        await billing.tell(Charge(account="x", cents=7))
        assert (await billing.ask(Charge(account="x", cents=0), timeout=5))["total"] == 12
        assert await a.members() == ["a", "b"]


async def test_remote_failures_arrive_as_their_greenroom_types() -> None:
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a, node_in(prefix, "b") as b:
        await a.runtime.spawn(
            Billing,
            name="billing",
            mailbox=MailboxConfig(kind="redis"),
            retry=None,
        )
        billing = b.ref("billing")
        with pytest.raises(HandlerError) as failed:
            await billing.ask(Charge(account="x", cents=-1), timeout=5)
        assert failed.value.error_type == "ValueError"
        assert "negative amount" in failed.value.error_message
        with pytest.raises(UnknownMessage) as unknown:
            await billing.ask(Refund(account="x"), timeout=5)
        assert unknown.value.accepted == ("Charge",)
        with pytest.raises(InvalidMessage):
            await billing.tell({"not": "a message"})
        with pytest.raises(RemoteError) as remote:
            await b.ref("billing").ask(Charge(account="x", cents=1), returns=list[int])
        assert remote.value.error_type == "InvalidReply"


async def test_an_ask_nobody_hosts_times_out_and_waits_in_the_stream() -> None:
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a:
        with pytest.raises(AskTimeout):
            await a.ref("nobody").ask(Charge(account="x", cents=1), timeout=0.2)
        await a.ref("billing").tell(Charge(account="y", cents=3))
        # The message waited in the stream: the actor started later gets it first.
        await a.runtime.spawn(Billing, name="billing", mailbox=MailboxConfig(kind="redis"))
        reply = await a.ref("billing").ask(Charge(account="y", cents=0), timeout=5)
        assert reply == {"account": "y", "total": 3}


async def test_asks_pending_when_the_node_leaves_fail_with_actor_stopped() -> None:
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a:
        failed: list[BaseException] = []

        async def ask() -> None:
            try:
                await a.ref("nobody").ask(Charge(account="x", cents=1), timeout=30)
            except ActorStopped as error:
                failed.append(error)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.lowlevel.checkpoint()  # the ask queues its post
            await a.mailboxes.flush()  # the post is in Redis: the ask waits for its reply
            with anyio.fail_after(5):
                await a.leave()
        assert len(failed) == 1
        with pytest.raises(ActorStopped):
            await a.ref("nobody").ask(Charge(account="x", cents=1), timeout=1)


async def test_partitions_are_shared_fairly_and_each_key_keeps_one_worker() -> None:
    prefix = redis_prefix()
    test = "fair"
    worker = ChildSpec(actor=Recorder, args=(test,))
    async with node_in(prefix, "a") as a:
        await a.host_pool("steps", worker, partitions=6)
        assert a.hosted("steps") == frozenset(range(6))
        async with node_in(prefix, "b") as b:
            await b.host_pool("steps", worker, partitions=6)
            for _ in range(4):  # a gives back its extra share, b takes it
                await a.rebalance()
                await b.rebalance()
            assert len(a.hosted("steps")) == 3
            assert len(b.hosted("steps")) == 3
            assert a.hosted("steps").isdisjoint(b.hosted("steps"))
            owners = await a.owners("steps")
            assert sorted(owners.values()) == ["a"] * 3 + ["b"] * 3  # type: ignore[type-var]

            steps = await b.pool_ref("steps", key="key")
            keys = [f"k{i}" for i in range(12)]
            for seq in range(5):
                for key in keys:
                    await steps.tell(Step(key=key, seq=seq))
            last = [await steps.ask(Step(key=key, seq=5), timeout=5) for key in keys]
            assert last == [f"steps/{partition_of(key, 6)}" for key in keys]
        # b left: its partitions were given back, a takes them at its next beat.
        await a.rebalance()
        assert a.hosted("steps") == frozenset(range(6))
    seen = SEEN.pop(test)
    for key in keys:
        assert [seq for k, seq, _ in seen if k == key] == list(range(6))
        assert {actor for k, _, actor in seen if k == key} == {steps.actor_of(key)}


async def test_bad_pool_use_gets_typed_errors() -> None:
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a:
        with pytest.raises(UnknownPool):
            await a.pool_ref("nope")
        with pytest.raises(ChildStartFailed):  # Recorder needs an argument
            await a.host_pool("p", Recorder, partitions=2)
        assert a.hosted("p") == frozenset()
        recorder = ChildSpec(actor=Recorder, args=("bad-use",))
        await a.host_pool("p", recorder, partitions=2)  # the failed attempt left nothing behind
        assert a.hosted("p") == frozenset({0, 1})  # both leases were given back, not held
        with pytest.raises(UsageError, match="hosts 'p' already"):
            await a.host_pool("p", recorder, partitions=2)
        async with node_in(prefix, "b") as b:
            with pytest.raises(UsageError, match="has 2 partitions"):
                await b.host_pool("p", recorder, partitions=3)
        ref = await a.pool_ref("p")
        with pytest.raises(UsageError, match="needs a key"):
            await ref.tell(Step(key="k", seq=1))
        with pytest.raises(UsageError):
            await a.host_pool("q", recorder, partitions=0)
    with pytest.raises(UsageError):
        Node(None, None, heartbeat=1, takeover=1)  # type: ignore[arg-type]


async def test_serve_node_runs_until_stopped_and_hands_its_partitions_back() -> None:
    from greenroom.cluster import serve_node

    prefix = redis_prefix()
    system = prefix.rstrip(":")
    stop = anyio.Event()
    ready = anyio.Event()
    worker = ChildSpec(actor=Recorder, args=("served",))

    async def setup(node: Node) -> None:
        await node.host_pool("steps", worker, partitions=2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(
            lambda: serve_node(
                setup,
                url=redis_url(),
                system=system,
                name="served",
                ready=lambda node: ready.set(),
                stop=stop,
            )
        )
        with anyio.fail_after(10):
            await ready.wait()
            async with node_in(prefix, "client") as client:
                steps = await client.pool_ref("steps", key="key")
                assert await steps.ask(Step(key="k", seq=1), timeout=5) == steps.actor_of("k")
            stop.set()  # the task group waits for serve_node to return
    async with node_in(prefix, "client") as client:
        assert await client.owners("steps") == {0: None, 1: None}  # handed back on the way out
        assert await client.members() == ["client"]
    assert SEEN.pop("served") == [("k", 1, steps.actor_of("k"))]


async def test_a_node_whose_lease_was_taken_stops_that_partition_and_takes_it_back_when_free() -> (
    None
):
    prefix = redis_prefix()
    async with node_in(prefix, "a") as a:
        await a.host_pool("p", ChildSpec(actor=Recorder, args=("stolen",)), partitions=2)
        assert a.hosted("p") == frozenset({0, 1})
        lease = f"{prefix}lease:p:1"
        await a.mailboxes.client.set(lease, "intruder", px=60_000)  # as if another node had it
        await a.rebalance()
        assert a.hosted("p") == frozenset({0})
        assert [c.id for c in await a.runtime.ref("p").which_children()] == ["0"]  # type: ignore[attr-defined]
        assert (await a.owners("p"))[1] == "intruder"  # not given back: it was not a's
        await a.mailboxes.client.delete(lease)
        await a.rebalance()
        assert a.hosted("p") == frozenset({0, 1})


async def test_a_full_remote_stream_refuses_with_mailbox_full_and_keeps_what_it_has() -> None:
    from greenroom._errors import MailboxFull

    prefix = redis_prefix()
    async with node_in(prefix, "a") as a:
        billing = a.ref("billing", capacity=2)
        await billing.tell(Charge(account="x", cents=1))
        await billing.tell(Charge(account="x", cents=2))
        with pytest.raises(MailboxFull):
            await billing.tell(Charge(account="x", cents=4))
        await a.runtime.spawn(Billing, name="billing", mailbox=MailboxConfig(kind="redis"))
        # The bound counts unacked entries, so ask through a ref with room.
        reply = await a.ref("billing", capacity=10).ask(Charge(account="x", cents=0), timeout=5)
        assert reply == {"account": "x", "total": 3}  # the two accepted ones, not the refused
