"""The testing kit's TestProbe and pytest fixtures, used the way users use them."""

from __future__ import annotations

import pytest

import greenroom as gr
from greenroom.testing import ProbeTimeout, TestProbe


class Work(gr.Message):
    n: int
    reply_to: str


class Done(gr.Message):
    n: int


class Noise(gr.Message):
    pass


class Worker(gr.Actor):
    @gr.handler
    async def work(self, msg: Work) -> None:
        target = self.ctx.runtime.ref(msg.reply_to)
        await target.tell(Noise())
        await target.tell(Done(n=msg.n * 2))


@pytest.mark.anyio
async def test_expect_returns_the_next_message_of_a_type_in_order(
    runtime: gr.Runtime, probe: TestProbe
) -> None:
    worker = await runtime.spawn(Worker)
    await worker.tell(Work(n=1, reply_to=probe.ref.name))
    await worker.tell(Work(n=2, reply_to=probe.ref.name))
    assert (await probe.expect(Done)).n == 2
    assert (await probe.expect(Done)).n == 4
    assert [type(e.body) for e in probe.received] == [Noise, Done, Noise, Done]


@pytest.mark.anyio
async def test_expect_times_out_with_what_did_arrive(runtime: gr.Runtime) -> None:
    probe = await TestProbe.spawn(runtime, name="p2")
    await probe.ref.tell(Noise())
    with pytest.raises(ProbeTimeout, match="received: Noise"):
        await probe.expect(Done, timeout=0.05)


@pytest.mark.anyio
async def test_expect_nothing_fails_when_a_message_arrives(probe: TestProbe) -> None:
    await probe.expect_nothing(within=0.01)
    await probe.ref.tell(Noise())
    with pytest.raises(AssertionError, match="received Noise"):
        await probe.expect_nothing(within=1.0)


@pytest.mark.anyio
async def test_a_handler_for_a_base_class_takes_its_subclasses() -> None:
    seen: list[str] = []

    class Base(gr.Message):
        pass

    class Child(Base):
        pass

    class Takes(gr.Actor):
        @gr.handler(Base)
        async def base(self, msg: Base) -> str:
            seen.append(type(msg).__name__)
            return "base"

    async with gr.Runtime() as rt:
        ref = await rt.spawn(Takes)
        assert await ref.ask(Child()) == "base"
        with pytest.raises(gr.UnknownMessage):
            await ref.ask(Noise())
    assert seen == ["Child"]
