"""Approval gates in a real Runtime: parked calls approved, denied, timed out, never run twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
import msgspec
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

import greenroom as gr
from greenroom.tools import (
    IRREVERSIBLE,
    PURE,
    ApprovalGate,
    ApprovalPending,
    Approve,
    Deny,
    Expire,
    Grant,
    GrantWidened,
    InvalidGrant,
    Ledger,
    Settled,
    ToolAccess,
    ToolBox,
    ToolCall,
    ToolRegistry,
    tool,
)

pytestmark = pytest.mark.anyio

ONE_ATTEMPT = gr.RetryPolicy(max_attempts=1, backoff=gr.Backoff(initial=0.0, maximum=0.0))


class PayInput(msgspec.Struct, frozen=True, kw_only=True):
    amount: int


class PayOutput(msgspec.Struct, frozen=True, kw_only=True):
    receipt: str


class LookupInput(msgspec.Struct, frozen=True, kw_only=True):
    name: str


class LookupOutput(msgspec.Struct, frozen=True, kw_only=True):
    found: bool


PAID: list[int] = []  # the tool's side: every payment that ran
LOOKED: list[str] = []


@tool(effect=IRREVERSIBLE, requires_approval=True)
async def pay(input: PayInput) -> PayOutput:
    """Pay an amount (needs a person's approval)."""
    PAID.append(input.amount)
    return PayOutput(receipt=f"paid-{input.amount}")


@tool(effect=PURE)
async def lookup(input: LookupInput) -> LookupOutput:
    """Look a name up (approval only when the grant asks for it)."""
    LOOKED.append(input.name)
    return LookupOutput(found=True)


class Request(gr.Message):
    tool: str
    arguments: str


class Ping(gr.Message):
    pass


class Payer(gr.Actor):
    """Parks what needs approval, keeps answering, and reports how each ticket settled."""

    def __init__(self, outcomes: MemoryObjectSendStream[Settled]) -> None:
        self.outcomes = outcomes

    async def on_start(self) -> None:
        await self.ctx.service(ToolBox).restore()

    @gr.handler
    async def request(self, msg: Request) -> str:
        try:
            out = await self.ctx.service(ToolBox).call(msg.tool, msg.arguments)
        except ApprovalPending as parked:
            return parked.ticket  # return at once: the actor goes on with other messages
        return msgspec.json.encode(out).decode()

    @gr.handler
    async def ping(self, msg: Ping) -> str:
        return "pong"

    @gr.handler
    async def ticket(self, msg: Approve | Deny | Expire) -> None:
        await self.outcomes.send(await self.ctx.service(ToolBox).settle(msg))


@dataclass
class Rig:
    runtime: gr.Runtime
    payer: gr.ActorRef
    outcomes: MemoryObjectReceiveStream[Settled]
    store: gr.MemoryStore
    records: list[ToolCall] = field(default_factory=list)

    async def park(self, amount: int = 5) -> str:
        arguments = msgspec.json.encode(PayInput(amount=amount)).decode()
        ticket = await self.payer.ask(Request(tool="pay", arguments=arguments), timeout=5)
        assert isinstance(ticket, str)
        return ticket

    async def outcome(self) -> Settled:
        with anyio.fail_after(5):
            return await self.outcomes.receive()


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _access(
    store: gr.MemoryStore, records: list[ToolCall], *, timeout: float = 60.0, clock: Clock | None
) -> ToolAccess:
    gate = ApprovalGate(store, timeout=timeout, **({"clock": clock} if clock else {}))
    return ToolAccess(
        ToolRegistry([pay, lookup]),
        grants={"Payer": ["pay", Grant("lookup", requires_approval=True)]},
        approvals=gate,
        interceptors=[Ledger(store)],
        on_call=records.append,
    )


async def _rig(timeout: float = 60.0, clock: Clock | None = None) -> AsyncIterator[Rig]:
    PAID.clear()
    LOOKED.clear()
    store = gr.MemoryStore()
    records: list[ToolCall] = []
    send, receive = anyio.create_memory_object_stream[Settled](10)
    async with gr.Runtime(extensions=[_access(store, records, timeout=timeout, clock=clock)]) as rt:
        payer = await rt.spawn(Payer, name="payer", args=(send,), retry=ONE_ATTEMPT)
        yield Rig(rt, payer, receive, store, records)
    send.close()
    receive.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async for made in _rig():
        yield made


async def test_a_parked_call_does_not_run_until_approved_then_runs_through_the_ledger(
    rig: Rig,
) -> None:
    ticket = await rig.park(5)
    assert PAID == []  # parked: the tool has not run
    await rig.payer.tell(Approve(ticket=ticket, by="ada"))
    settled = await rig.outcome()
    assert (settled.state, settled.tool) == ("done", "pay")
    assert settled.output is not None
    assert msgspec.json.decode(settled.output, type=PayOutput) == PayOutput(receipt="paid-5")
    assert PAID == [5]
    parked, ran = rig.records
    assert parked.error is not None
    assert parked.error.type.endswith("ApprovalPending")
    assert (parked.ticket, ran.ticket) == (ticket, ticket)
    assert ran.output == PayOutput(receipt="paid-5")
    assert ran.key == parked.key == ticket  # the approved call runs as the step it was parked in
    entry = await Ledger(rig.store).entry(ticket)
    assert entry is not None
    assert entry.receipt is not None
    assert entry.tool == "pay"


async def test_a_second_approve_of_the_same_ticket_does_not_run_it_again(rig: Rig) -> None:
    ticket = await rig.park(7)
    await rig.payer.tell(Approve(ticket=ticket))
    assert (await rig.outcome()).state == "done"
    await rig.payer.tell(Approve(ticket=ticket))
    again = await rig.outcome()
    assert (again.state, again.reason) == ("closed", "done")
    await rig.payer.tell(Deny(ticket=ticket, reason="too late"))
    assert (await rig.outcome()).state == "closed"
    assert PAID == [7]


async def test_a_denied_call_never_runs_and_cannot_be_approved_after(rig: Rig) -> None:
    ticket = await rig.park(9)
    await rig.payer.tell(Deny(ticket=ticket, reason="not this month"))
    denied = await rig.outcome()
    assert (denied.state, denied.reason) == ("denied", "not this month")
    await rig.payer.tell(Approve(ticket=ticket))
    assert (await rig.outcome()).state == "closed"
    assert PAID == []


async def test_a_parked_call_expires_at_its_deadline_and_cannot_be_approved_later() -> None:
    async for rig in _rig(timeout=0.05):
        ticket = await rig.park(11)
        expired = await rig.outcome()  # the deadline timer's Expire, settled by the actor
        assert (expired.ticket, expired.state) == (ticket, "expired")
        await rig.payer.tell(Approve(ticket=ticket))
        late = await rig.outcome()
        assert (late.state, late.reason) == ("closed", "expired")
        assert PAID == []


async def test_an_approve_past_the_deadline_expires_the_ticket_even_before_its_timer() -> None:
    clock = Clock()
    async for rig in _rig(timeout=60.0, clock=clock):
        ticket = await rig.park(13)
        clock.now += 61  # wall clock past the deadline; the loop timer is not due yet
        await rig.payer.tell(Approve(ticket=ticket))
        assert (await rig.outcome()).state == "expired"
        assert PAID == []


async def test_the_actor_answers_other_messages_while_a_call_is_parked(rig: Rig) -> None:
    first = await rig.park(1)
    assert await rig.payer.ask(Ping(), timeout=5) == "pong"
    second = await rig.park(2)  # another request parks beside the first
    assert first != second
    assert await rig.payer.ask(Ping(), timeout=5) == "pong"
    await rig.payer.tell(Approve(ticket=second))
    assert (await rig.outcome()).state == "done"
    assert PAID == [2]


async def test_a_grant_that_requires_approval_parks_a_tool_that_does_not(rig: Rig) -> None:
    arguments = msgspec.json.encode(LookupInput(name="ada")).decode()
    ticket = await rig.payer.ask(Request(tool="lookup", arguments=arguments), timeout=5)
    assert LOOKED == []
    await rig.payer.tell(Approve(ticket=ticket))
    assert (await rig.outcome()).state == "done"
    assert LOOKED == ["ada"]


async def test_an_unknown_ticket_is_refused_typed_and_dead_lettered(rig: Rig) -> None:
    with pytest.raises(gr.HandlerError, match="UnknownTicket"):
        await rig.payer.ask(Approve(ticket="payer/1/0"), timeout=5)
    [letter] = rig.runtime.dead_letters.list(actor="payer")
    assert letter.error.type.endswith("UnknownTicket")
    assert letter.envelope.attempt == 1


def test_a_delegation_cannot_drop_a_required_approval() -> None:
    held = Grant("lookup", requires_approval=True)
    with pytest.raises(GrantWidened, match="approval"):
        held.narrowed(requires_approval=False)
    assert held.narrowed(budget=1).requires_approval


async def test_a_tool_that_requires_approval_needs_a_gate_at_spawn() -> None:
    access = ToolAccess(ToolRegistry([pay]), grants={"Payer": ["pay"]})
    async with gr.Runtime(extensions=[access]) as rt:
        send, receive = anyio.create_memory_object_stream[Settled](1)
        with send, receive, pytest.raises(InvalidGrant, match="approval"):
            await rt.spawn(Payer, name="payer", args=(send,))


class ApprovalDesk(gr.Actor):
    """Forwards each Approve to ``payer``, then fails once: its retry forwards it again."""

    failed_once = False

    @gr.handler
    async def approve(self, msg: Approve) -> None:
        await self.ctx.forward(self.ctx.runtime.ref("payer"))
        if not ApprovalDesk.failed_once:
            ApprovalDesk.failed_once = True
            raise ConnectionError("lost after forwarding")


async def test_an_approve_forwarded_again_is_the_same_settlement_not_a_closed_ticket(
    rig: Rig,
) -> None:
    ApprovalDesk.failed_once = False
    retry = gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=0.0, maximum=0.0))
    desk = await rig.runtime.spawn(ApprovalDesk, name="desk", retry=retry)
    ticket = await rig.park(9)
    await desk.tell(Approve(ticket=ticket, by="ada"))
    first, again = await rig.outcome(), await rig.outcome()
    # The desk forwarded the one approval twice: the same request settles the same way.
    assert (first.state, again.state) == ("done", "done")
    assert first.output == again.output
    assert PAID == [9]


async def test_an_approve_resent_with_its_idempotency_key_is_the_same_settlement(
    rig: Rig,
) -> None:
    ticket = await rig.park(11)
    for _ in range(2):
        await rig.payer.tell(Approve(ticket=ticket), idempotency_key=f"approve-{ticket}")
    assert [(await rig.outcome()).state for _ in range(2)] == ["done", "done"]
    await rig.payer.tell(Approve(ticket=ticket))  # another approval: closed
    assert (await rig.outcome()).state == "closed"
    assert PAID == [11]
