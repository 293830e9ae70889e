"""Ledger steps are keyed by the request (its causation), not by the envelope that carried it.

A router that forwards a request and is then handled again (a retry here;
a crash and redelivery in ``tests/crash/test_forwarded_pay_crash.py``)
forwards it again under a new envelope id: the worker must meet the steps
it took for the first forward, not run its irreversible tool again.
"""

from __future__ import annotations

import anyio
import msgspec
import pytest

import greenroom as gr
from greenroom.agent import Coordinator, Router, conversation_pool, conversation_workers
from greenroom.tools import IRREVERSIBLE, Ledger, ToolAccess, ToolBox, ToolRegistry, tool

pytestmark = pytest.mark.anyio

RETRY = gr.RetryPolicy(max_attempts=3, backoff=gr.Backoff(initial=0.0, maximum=0.0))


class Counter:
    """What the payers did: the orders paid (the tool's effect) and the deliveries handled."""

    def __init__(self) -> None:
        self.paid: list[str] = []
        self.handled: list[int] = []  # envelope ids
        self._waiters: list[tuple[int, anyio.Event]] = []

    def handle(self, envelope_id: int) -> None:
        self.handled.append(envelope_id)
        for count, event in self._waiters:
            if len(self.handled) >= count:
                event.set()

    async def wait_handled(self, count: int) -> None:
        """Until ``count`` deliveries were handled by payers (5 s at most)."""
        event = anyio.Event()
        self._waiters.append((count, event))
        if len(self.handled) >= count:
            event.set()
        with anyio.fail_after(5):
            await event.wait()


COUNTER = Counter()


class PayInput(msgspec.Struct, frozen=True, kw_only=True):
    order: str


class PayOutput(msgspec.Struct, frozen=True, kw_only=True):
    receipt: str


@tool(effect=IRREVERSIBLE)
async def pay(input: PayInput) -> PayOutput:
    """Charge the customer for ``order``: it cannot be taken back."""
    COUNTER.paid.append(input.order)
    return PayOutput(receipt=f"r{len(COUNTER.paid)}")


class Order(gr.Message):
    conversation: str
    order: str


class Payer(gr.Actor):
    @gr.handler
    async def order(self, msg: Order) -> str:
        out = await self.ctx.service(ToolBox).call("pay", {"order": msg.order})
        assert isinstance(out, PayOutput)
        envelope = self.ctx.envelope
        assert envelope is not None
        COUNTER.handle(envelope.id)
        return out.receipt


class FlakyFront(gr.Actor):
    """Forwards each order to ``payer``, then fails once: its retry forwards it again."""

    def __init__(self, failed: list[str]) -> None:
        self.failed = failed

    @gr.handler
    async def order(self, msg: Order) -> None:
        await self.ctx.forward(self.ctx.runtime.ref("payer"))
        if msg.order not in self.failed:
            self.failed.append(msg.order)
            raise ConnectionError("lost after forwarding")


class DeferringFront(FlakyFront):
    """Defers each order and forwards it from the deferral, then fails once."""

    @gr.handler
    async def order(self, msg: Order) -> None:
        await self.ctx.defer().forward(self.ctx.runtime.ref("payer"))
        if msg.order not in self.failed:
            self.failed.append(msg.order)
            raise ConnectionError("lost after forwarding")


class TwoSends(gr.Actor):
    """Tells ``payer`` the same order twice while handling one message: two requests."""

    @gr.handler
    async def order(self, msg: Order) -> None:
        payer = self.ctx.runtime.ref("payer")
        await self.ctx.tell(payer, msg)
        await self.ctx.tell(payer, msg)


def _access(store: gr.MemoryStore) -> ToolAccess:
    return ToolAccess(ToolRegistry([pay]), grants={"Payer": ["pay"]}, interceptors=[Ledger(store)])


@pytest.fixture(autouse=True)
def counter() -> Counter:
    global COUNTER
    COUNTER = Counter()
    return COUNTER


@pytest.mark.parametrize("front", [FlakyFront, DeferringFront])
async def test_a_request_forwarded_again_does_not_run_its_irreversible_step_twice(
    front: type[gr.Actor], counter: Counter
) -> None:
    store = gr.MemoryStore()
    failed: list[str] = []
    async with gr.Runtime(extensions=[_access(store)]) as rt:
        await rt.spawn(Payer, name="payer")
        ref = await rt.spawn(front, name="front", args=(failed,), retry=RETRY)
        assert await ref.ask(Order(conversation="c", order="o-1"), timeout=5) == "r1"
        await ref.tell(Order(conversation="c", order="o-2"))
        await counter.wait_handled(4)  # two orders, each forwarded twice
    assert failed == ["o-1", "o-2"]
    assert len(set(counter.handled)) == 4  # four envelopes ...
    assert counter.paid == ["o-1", "o-2"]  # ... two requests, each paid once
    entries = await Ledger(store).entries("payer")
    assert len(entries) == 2
    assert all(entry.receipt is not None for _, entry in entries)


class FlakyRouter(Router):
    """Fails once after routing each order, so it is handled again and routes it again."""

    failed: set[str] = set()  # noqa: RUF012 - one test's record, reset by it

    async def route(self, msg: gr.Message) -> None:
        await super().route(msg)
        order = getattr(msg, "order", "")
        if order not in self.failed:
            self.failed.add(order)
            raise ConnectionError("the router lost its ack")


@pytest.mark.parametrize("pool", ["consistent_hash", "keyed"])
async def test_a_coordinator_router_that_routes_again_does_not_pay_twice(
    pool: str, counter: Counter
) -> None:
    FlakyRouter.failed = set()
    worker = gr.ChildSpec(actor=Payer)
    pools = [
        conversation_pool("payers", worker, size=2)
        if pool == "consistent_hash"
        else conversation_workers("payers", worker, passivate_after=None)
    ]
    desk = Coordinator("shop", routes={Order: "payers"}, pools=pools, router=FlakyRouter)
    async with gr.Runtime(extensions=[_access(gr.MemoryStore())]) as rt:
        router = await desk.start(rt)
        assert await router.ask(Order(conversation="c-1", order="o-1"), timeout=5) == "r1"
        for n in (2, 3):
            await router.tell(Order(conversation=f"c-{n}", order=f"o-{n}"))
        await counter.wait_handled(6)  # three orders, each routed twice
    assert FlakyRouter.failed == {"o-1", "o-2", "o-3"}
    assert sorted(counter.paid) == ["o-1", "o-2", "o-3"]


async def test_two_sends_of_one_handler_are_two_requests_and_both_run(counter: Counter) -> None:
    async with gr.Runtime(extensions=[_access(gr.MemoryStore())]) as rt:
        await rt.spawn(Payer, name="payer")
        ref = await rt.spawn(TwoSends, name="sender")
        await ref.tell(Order(conversation="c", order="o-1"))
        await counter.wait_handled(2)
    assert counter.paid == ["o-1", "o-1"]  # two tells, not one request forwarded twice


async def test_a_message_resent_with_its_idempotency_key_runs_its_step_once_in_memory(
    counter: Counter,
) -> None:
    async with gr.Runtime(extensions=[_access(gr.MemoryStore())]) as rt:
        payer = await rt.spawn(Payer, name="payer")
        for _ in range(3):
            await payer.tell(Order(conversation="c", order="o-1"), idempotency_key="order-1")
        await payer.tell(Order(conversation="c", order="o-2"), idempotency_key=b"order-2")
        # A memory mailbox delivers every re-send; the ledger answers them.
        assert await payer.ask(Order(conversation="c", order="o-3"), timeout=5) == "r3"
        for _ in range(2):  # an ask re-sent with its key is answered from the receipt
            answer = await payer.ask(
                Order(conversation="c", order="o-4"), timeout=5, idempotency_key="order-4"
            )
            assert answer == "r4"
    assert counter.paid == ["o-1", "o-2", "o-3", "o-4"]
    assert len(counter.handled) == 7


async def test_concurrent_asks_of_one_key_share_one_delivery_and_one_reply(
    counter: Counter,
) -> None:
    async with gr.Runtime(extensions=[_access(gr.MemoryStore())]) as rt:
        payer = await rt.spawn(Payer, name="payer")
        answers: list[str] = []

        async def ask() -> None:
            order = Order(conversation="c", order="o-1")
            answers.append(await payer.ask(order, timeout=5, idempotency_key="order-1"))

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ask)
    assert answers == ["r1", "r1", "r1"]
    assert len(counter.handled) == 1  # the later asks joined the first


class Gate(gr.Message):
    order: str


class Slow(gr.Actor):
    """Answers a ``Gate`` only once ``release`` is set."""

    def __init__(self, release: anyio.Event) -> None:
        self.release = release

    @gr.handler
    async def gate(self, msg: Gate) -> str:
        await self.release.wait()
        return msg.order


async def test_an_ask_that_joins_a_keyed_ask_times_out_alone_and_the_first_is_answered() -> None:
    release = anyio.Event()
    async with gr.Runtime() as rt:
        slow = await rt.spawn(Slow, name="slow", args=(release,))
        first: list[str] = []

        async def ask_first() -> None:
            first.append(await slow.ask(Gate(order="g"), timeout=10, idempotency_key="g"))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask_first)
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(5), pytest.raises(gr.AskTimeout):
                await slow.ask(Gate(order="g"), timeout=0.05, idempotency_key="g")
            release.set()
    assert first == ["g"]  # the joiner's timeout did not cancel the shared reply


@pytest.mark.parametrize("key", [17, "", b"", "k" * 1025])
async def test_an_invalid_idempotency_key_is_a_usage_error_naming_the_fix(key: object) -> None:
    async with gr.Runtime() as rt:
        payer = await rt.spawn(Payer, name="payer")
        with pytest.raises(gr.UsageError, match="idempotency key"):
            await payer.tell(Order(conversation="c", order="o"), idempotency_key=key)  # type: ignore[arg-type]
