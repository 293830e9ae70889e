"""The reply target travels in the envelope: no registry of pending asks, one timeout."""

from __future__ import annotations

import anyio
import msgspec
import pytest

import greenroom as gr
from greenroom.mailbox import make_envelope


class Ping(gr.Request[int]):
    n: int


class Hold(gr.Message):
    pass


class Holder(gr.Actor):
    """Defers every ``Hold`` ask and never settles it; answers ``Ping``."""

    def __init__(self, held: list[gr.Deferred], entered: anyio.Event) -> None:
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
    held: list[gr.Deferred] = []
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
