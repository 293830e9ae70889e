"""Remote tells and asks with an idempotency key: one request across nodes, re-sends dropped."""

from __future__ import annotations

import pytest

from greenroom import Actor, ChildSpec, MailboxConfig, Message, handler
from greenroom.mailbox import keyed_id
from tests._redis_server import redis_prefix
from tests.cluster.test_node import node_in

pytestmark = pytest.mark.anyio


class Charge(Message, frozen=True):
    cents: int


class Totals(Message, frozen=True):
    pass


class Ledgerish(Actor):
    """Adds up charges; records each delivery's ``(cents, id, causation)``."""

    def __init__(self, seen: list[tuple[int, int, int]]) -> None:
        self.seen = seen

    @handler
    async def charge(self, msg: Charge) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        self.seen.append((msg.cents, envelope.id, envelope.causation))
        return sum(cents for cents, _, _ in self.seen)

    @handler
    async def totals(self, msg: Totals) -> int:
        return sum(cents for cents, _, _ in self.seen)


async def test_a_remote_tell_resent_with_its_key_is_one_charge_on_the_other_node() -> None:
    prefix = redis_prefix()
    seen: list[tuple[int, int, int]] = []
    async with node_in(prefix, "a") as a, node_in(prefix, "b") as b:
        await a.runtime.spawn(
            Ledgerish, name="billing", args=(seen,), mailbox=MailboxConfig(kind="redis")
        )
        billing = b.ref("billing")
        for _ in range(3):  # b did not hear whether the first got through
            await billing.tell(Charge(cents=7), idempotency_key="invoice-1")
        assert await billing.ask(Totals(), timeout=5) == 7
        # An ask with a key carries its causation across: the id from the key.
        assert await billing.ask(Charge(cents=1), timeout=5, idempotency_key="invoice-2") == 8
    key1, key2 = keyed_id("billing", "invoice-1"), keyed_id("billing", "invoice-2")
    assert seen == [(7, key1, key1), (1, key2, key2)]


class Bill(Message, frozen=True):
    account: str
    cents: int


class Biller(Actor):
    """A pool worker: records ``(account, cents, causation)`` of each delivery."""

    def __init__(self, seen: list[tuple[str, int, int]]) -> None:
        self.seen = seen

    @handler
    async def bill(self, msg: Bill) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        self.seen.append((msg.account, msg.cents, envelope.causation))
        return len(self.seen)


async def test_a_remote_pool_tell_resent_with_its_key_reaches_its_partition_once() -> None:
    prefix = redis_prefix()
    seen: list[tuple[str, int, int]] = []
    async with node_in(prefix, "a") as a, node_in(prefix, "b") as b:
        await a.host_pool("bills", ChildSpec(actor=Biller, args=(seen,)), partitions=4)
        bills = await b.pool_ref("bills", key="account")
        for _ in range(2):
            await bills.tell(Bill(account="x", cents=5), idempotency_key="bill-x-1")
        assert await bills.ask(Bill(account="x", cents=0), timeout=5) == 2
    worker = bills.actor_of("x")
    assert seen[0] == ("x", 5, keyed_id(worker, "bill-x-1"))
    assert [cents for _, cents, _ in seen] == [5, 0]
