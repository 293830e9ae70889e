"""The reply target travels in the envelope: no registry of pending asks, one timeout."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest

import greenroom as gr
from greenroom.actors import Deferred
from greenroom.mailbox import SqliteMailboxes, make_envelope


class Ping(gr.Request[int]):
    n: int


class Hold(gr.Message):
    pass


class Holder(gr.Actor):
    """Defers every ``Hold`` ask and never settles it; answers ``Ping``."""

    def __init__(self, held: list[Deferred], entered: anyio.Event) -> None:
        self.held = held
        self.entered = entered

    @gr.handler
    async def hold(self, msg: Hold) -> None:
        self.held.append(self.ctx.defer())
        self.entered.set()

    @gr.handler
    async def ping(self, msg: Ping) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        assert envelope.reply is not None  # the asker's future, in the envelope
        return msg.n + 1


class Gate(gr.Actor):
    def __init__(self, gate: anyio.Event) -> None:
        self.gate = gate

    @gr.handler
    async def ping(self, msg: Ping) -> int:
        await self.gate.wait()
        return msg.n


@pytest.mark.anyio
async def test_a_local_ask_carries_its_reply_future_in_its_envelope() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Holder, args=([], anyio.Event()))
        assert await ref.ask(Ping(n=1), timeout=5) == 2
        assert rt.statistics().pending_asks == 0


@pytest.mark.anyio
async def test_a_deferred_ask_never_settled_fails_with_actor_stopped_when_its_actor_stops() -> None:
    held: list[Deferred] = []
    entered = anyio.Event()
    errors: list[BaseException] = []
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Holder, name="holder", args=(held, entered))

        async def ask() -> None:
            try:
                await ref.ask(Hold(), timeout=30)
            except gr.GreenroomError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            with anyio.fail_after(5):
                await entered.wait()
            with anyio.fail_after(5):
                await rt.stop("holder")
    assert [type(e) for e in errors] == [gr.ActorStopped]
    assert held[0].settled


@pytest.mark.anyio
async def test_an_ask_waiting_for_mailbox_room_times_out_at_its_own_deadline() -> None:
    gate = anyio.Event()
    async with gr.Runtime() as rt:
        box = gr.MailboxConfig(capacity=1, overflow="wait")
        ref = await rt.spawn(gr.ChildSpec(actor=Gate, args=(gate,), mailbox=box))
        ref.tell_nowait(Ping(n=0))  # handled: the handler waits at the gate
        await anyio.wait_all_tasks_blocked()
        ref.tell_nowait(Ping(n=1))  # queued: the mailbox is full
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(gr.AskTimeout) as info:
            await ref.ask(Ping(n=2), timeout=0.1)
        assert info.value.timeout == 0.1
        assert anyio.current_time() - started < 2
        gate.set()
        assert await ref.ask(Ping(n=3), timeout=5) == 3  # the timed-out ask was never queued
        assert rt.statistics().pending_asks == 0


def test_an_envelope_decoded_from_bytes_never_carries_a_reply_future() -> None:
    envelope = make_envelope("a", Ping(n=1))
    data = msgspec.msgpack.encode(envelope)
    assert msgspec.msgpack.decode(data, type=gr.Envelope).reply is None
    hostile = msgspec.msgpack.encode({**msgspec.structs.asdict(envelope), "reply": 7})
    with pytest.raises(msgspec.ValidationError, match="reply"):
        msgspec.msgpack.decode(hostile, type=gr.Envelope)


@pytest.mark.anyio
async def test_a_dead_letter_of_an_ask_keeps_no_live_future() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Holder, name="holder", args=([], anyio.Event()))
        with pytest.raises(gr.UnknownMessage):
            await ref.ask(gr.Request(), timeout=5)  # no handler: a dead letter
        [letter] = rt.dead_letters.list(reason="unknown_message")
        assert letter.envelope.reply is None
        msgspec.msgpack.encode(letter)  # a letter is plain data


class Relay(gr.Message):
    pass


class Front(gr.Actor):
    """Forwards every ``Relay`` to ``target``; records what the forward raised."""

    def __init__(self, target: gr.ActorRef, outcome: list[BaseException], done: anyio.Event):
        self.target = target
        self.outcome = outcome
        self.done = done

    @gr.handler
    async def relay(self, msg: Relay) -> None:
        try:
            await self.ctx.forward(self.target, Ping(n=9))
        except gr.GreenroomError as exc:
            self.outcome.append(exc)
        self.done.set()


@pytest.mark.anyio
async def test_a_forward_of_an_ask_from_another_process_waits_for_room_until_its_deadline() -> None:
    import time

    gate, done = anyio.Event(), anyio.Event()
    outcome: list[BaseException] = []
    async with gr.Runtime() as rt:
        box = gr.MailboxConfig(capacity=1, overflow="wait")
        target = await rt.spawn(gr.ChildSpec(actor=Gate, args=(gate,), mailbox=box))
        target.tell_nowait(Ping(n=0))  # handled: waits at the gate
        await anyio.wait_all_tasks_blocked()
        target.tell_nowait(Ping(n=1))  # queued: the mailbox is full
        front = await rt.spawn(Front, name="front", args=(target, outcome, done))
        # An ask as a remote node sends it: a reply address, a deadline, no future.
        envelope = make_envelope("front", Relay(), reply_to="node-elsewhere")
        envelope.correlation_id = envelope.id
        envelope.deadline = time.time() + 0.1
        assert rt._system.cells[front.name].mailbox.offer(envelope)
        with anyio.fail_after(5):
            await done.wait()
        assert [type(e) for e in outcome] == [gr.AskTimeout]
        gate.set()
        assert await target.ask(Ping(n=3), timeout=5) == 3  # the target still answers
        assert rt.statistics().pending_asks == 0


class Fails(gr.Actor):
    """Fails every ``Ping`` once it is released, counting the calls."""

    def __init__(self, calls: list[int], release: anyio.Event) -> None:
        self.calls = calls
        self.release = release

    @gr.handler
    async def ping(self, msg: Ping) -> int:
        self.calls.append(msg.n)
        await self.release.wait()
        raise RuntimeError("boom")


@pytest.mark.anyio
async def test_asks_joined_by_key_all_get_the_failure_of_the_one_delivery() -> None:
    calls: list[int] = []
    release = anyio.Event()
    errors: list[BaseException] = []
    async with gr.Runtime() as rt:
        spec = gr.ChildSpec(
            actor=Fails, args=(calls, release), retry=gr.RetryPolicy(max_attempts=1)
        )
        ref = await rt.spawn(spec)

        async def ask() -> None:
            try:
                await ref.ask(Ping(n=1), timeout=5, idempotency_key="k")
            except gr.GreenroomError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
            release.set()
    assert calls == [1]  # one delivery for the three asks
    assert [type(e) for e in errors] == [gr.HandlerError] * 3


@pytest.mark.anyio
async def test_an_ask_waiting_for_room_in_a_durable_mailbox_times_out_at_its_deadline(
    tmp_path: Path,
) -> None:
    gate = anyio.Event()
    path = tmp_path / "m.db"
    async with (
        SqliteMailboxes(path) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}) as rt,
    ):
        box = gr.MailboxConfig(kind="durable", capacity=1, overflow="wait")
        ref = await rt.spawn(gr.ChildSpec(actor=Gate, args=(gate,), mailbox=box))
        await ref.tell(Ping(n=0))  # committed; its handler waits at the gate
        with anyio.fail_after(5), pytest.raises(gr.AskTimeout):
            await ref.ask(Ping(n=1), timeout=0.1)  # no room: one unacked message
        gate.set()
        assert await ref.ask(Ping(n=2), timeout=5) == 2
        assert rt.statistics().pending_asks == 0
