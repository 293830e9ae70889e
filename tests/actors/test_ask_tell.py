"""ActorRef.tell and ask: replies, timeouts, late replies, stopped actors, trace context."""

from __future__ import annotations

import anyio
import pytest

import greenroom as gr
from greenroom.trace import current_span
from tests.actors._support import wait_until


class Ping(gr.Message):
    n: int


class Hold(gr.Message):
    """Blocks the handler until the test releases it."""


class Boom(gr.Message):
    text: str


class Forward(gr.Message):
    n: int


class Seen(gr.Message):
    trace_id: int
    parent_span_id: int | None
    sender: str | None


class Echo(gr.Actor):
    def __init__(self, gate: anyio.Event | None = None, entered: anyio.Event | None = None) -> None:
        self.gate = gate
        self.entered = entered
        self.pings: list[int] = []

    @gr.handler
    async def ping(self, msg: Ping) -> int:
        self.pings.append(msg.n)
        return msg.n * 2

    @gr.handler
    async def hold(self, msg: Hold) -> str:
        if self.entered is not None:
            self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return "released"

    @gr.handler
    async def boom(self, msg: Boom) -> None:
        raise ValueError(msg.text)


@pytest.mark.anyio
async def test_ask_returns_the_handler_return_value() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo, name="echo")
        assert await ref.ask(Ping(n=21)) == 42


@pytest.mark.anyio
async def test_tell_is_handled_in_order() -> None:
    seen: list[int] = []

    class Recorder(gr.Actor):
        @gr.handler(Ping)
        async def ping(self, msg: Ping) -> None:
            seen.append(msg.n)

    async with gr.Runtime() as rt:
        ref = await rt.spawn(Recorder)
        for n in range(100):
            await ref.tell(Ping(n=n))
        await ref.ask(Ping(n=100))
    assert seen == list(range(101))


@pytest.mark.anyio
async def test_ask_times_out_with_ask_timeout_and_counts_the_late_reply() -> None:
    gate = anyio.Event()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo, args=(gate,))
        with anyio.fail_after(5):
            with pytest.raises(gr.AskTimeout) as info:
                await ref.ask(Hold(), timeout=0.05)
        assert info.value.timeout == 0.05
        assert isinstance(info.value, TimeoutError)
        gate.set()
        assert await ref.ask(Ping(n=1)) == 2  # the held handler finished first
        stats = rt.statistics()
        assert stats.late_replies == 1
        assert stats.pending_asks == 0


@pytest.mark.anyio
async def test_outer_cancel_scope_still_bounds_an_ask() -> None:
    gate = anyio.Event()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo, args=(gate,))
        with anyio.move_on_after(0.05) as scope:
            await ref.ask(Hold(), timeout=60)
        assert scope.cancelled_caught
        assert rt.statistics().pending_asks == 0
        gate.set()


@pytest.mark.anyio
async def test_ask_after_handler_failure_raises_handler_error_with_original_type() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Echo, retry=gr.RetryPolicy(max_attempts=1))
        with pytest.raises(gr.HandlerError) as info:
            await ref.ask(Boom(text="bad input"))
        assert info.value.error_type == "ValueError"
        assert info.value.error_message == "bad input"
        assert isinstance(info.value.__cause__, ValueError)
        # the actor was restarted and serves the next message
        assert await ref.ask(Ping(n=2)) == 4


@pytest.mark.anyio
async def test_tell_failure_is_retried_then_dead_lettered_never_silent() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(
            Echo, retry=gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=0, jitter=0))
        )
        await ref.tell(Boom(text="x"))
        assert await ref.ask(Ping(n=1)) == 2
        letters = rt.dead_letters.list(reason="handler_failed")
        assert len(letters) == 1
        assert letters[0].envelope.attempt == 2
        assert letters[0].error.type == "ValueError"
        assert letters[0].error.traceback is not None


@pytest.mark.anyio
async def test_ask_to_stopped_actor_raises_actor_stopped() -> None:
    async with gr.Runtime() as rt:
        sup = await rt.spawn(gr.SupervisorSpec(id="sup", children=(gr.ChildSpec(actor=Echo),)))
        ref = rt.ref("sup/echo")
        await sup.terminate_child("echo")
        with pytest.raises(gr.ActorStopped):
            await ref.ask(Ping(n=1))
        with pytest.raises(gr.ActorStopped):
            await ref.tell(Ping(n=1))
        assert rt.dead_letters.list(reason="actor_stopped")


@pytest.mark.anyio
async def test_actor_stopping_with_asks_pending_fails_every_one_of_them() -> None:
    gate = anyio.Event()
    entered = anyio.Event()
    errors: list[BaseException] = []
    async with gr.Runtime() as rt:
        spec = gr.ChildSpec(actor=Echo, args=(gate, entered), shutdown=0.05)
        sup = await rt.spawn(gr.SupervisorSpec(id="sup", children=(spec,)))
        ref = rt.ref("sup/echo")

        async def ask(body: gr.Message) -> None:
            try:
                await ref.ask(body, timeout=10)
            except gr.GreenroomError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, Hold())
            with anyio.fail_after(5):
                await entered.wait()
            for n in range(3):
                tg.start_soon(ask, Ping(n=n))
            await anyio.lowlevel.checkpoint()
            await sup.terminate_child("echo")
    assert len(errors) == 4
    assert all(isinstance(e, gr.ActorStopped) for e in errors)


@pytest.mark.anyio
async def test_runtime_exit_fails_pending_asks_and_leaves_no_task() -> None:
    gate = anyio.Event()
    entered = anyio.Event()
    result: list[BaseException] = []
    import asyncio

    before = set(asyncio.all_tasks())
    async with (
        anyio.create_task_group() as tg,
        gr.Runtime(gr.RuntimeConfig(shutdown_timeout=1.0)) as rt,
    ):
        ref = await rt.spawn(gr.ChildSpec(actor=Echo, args=(gate, entered), shutdown=0.05))

        async def ask() -> None:
            try:
                await ref.ask(Hold(), timeout=10)
            except gr.GreenroomError as exc:
                result.append(exc)

        tg.start_soon(ask)
        with anyio.fail_after(5):
            await entered.wait()
    assert [type(e) for e in result] == [gr.ActorStopped]
    assert set(asyncio.all_tasks()) - before == set()


@pytest.mark.anyio
async def test_messages_from_a_handler_join_its_trace() -> None:
    seen: list[Seen] = []

    class Leaf(gr.Actor):
        @gr.handler
        async def forward(self, msg: Forward) -> None:
            envelope = self.ctx.envelope
            assert envelope is not None
            seen.append(
                Seen(
                    trace_id=envelope.trace_id,
                    parent_span_id=envelope.parent_span_id,
                    sender=envelope.sender,
                )
            )

    class Middle(gr.Actor):
        def __init__(self, leaf: gr.ActorRef) -> None:
            self.leaf = leaf

        @gr.handler
        async def forward(self, msg: Forward) -> str:
            await self.leaf.tell(msg)
            envelope = self.ctx.envelope
            assert envelope is not None
            return f"{envelope.trace_id} {envelope.span_id}"

    async with gr.Runtime() as rt:
        leaf = await rt.spawn(Leaf, name="leaf")
        middle = await rt.spawn(Middle, name="middle", args=(leaf,))
        assert current_span.get() is None
        trace_and_span = await middle.ask(Forward(n=1))
        await leaf.ask(Forward(n=2))  # a root message: a new trace
    trace_id, span_id = map(int, trace_and_span.split())
    assert seen[0] == Seen(trace_id=trace_id, parent_span_id=span_id, sender="middle")
    assert seen[1].trace_id != trace_id
    assert seen[1].parent_span_id is None


@pytest.mark.anyio
async def test_ctx_log_is_bound_to_actor_and_trace() -> None:
    from loguru import logger

    records: list[dict[str, object]] = []

    class Logs(gr.Actor):
        @gr.handler
        async def ping(self, msg: Ping) -> None:
            self.ctx.log.info("handled {n}", n=msg.n)

    logger.enable("greenroom")
    sink = logger.add(lambda m: records.append(dict(m.record["extra"])), level="INFO")
    try:
        async with gr.Runtime() as rt:
            ref = await rt.spawn(Logs, name="logs")
            await ref.ask(Ping(n=1))
    finally:
        logger.remove(sink)
        logger.disable("greenroom")
    mine = [r for r in records if r.get("actor") == "logs"]
    assert mine
    assert mine[0]["trace_id"]
    assert mine[0]["span_id"]


def test_run_returns_main_result() -> None:
    async def main() -> int:
        async with gr.Runtime() as rt:
            ref = await rt.spawn(Echo)
            result: int = await ref.ask(Ping(n=4))
            return result

    assert gr.run(main) == 8


class FailAfterGate(gr.Message):
    pass


class Gated(gr.Actor):
    def __init__(self, gate: anyio.Event, entered: anyio.Event) -> None:
        self.gate = gate
        self.entered = entered

    @gr.handler
    async def fail_after_gate(self, msg: FailAfterGate) -> None:
        self.entered.set()
        await self.gate.wait()
        raise RuntimeError("failed while its supervisor was stopping")


@pytest.mark.anyio
async def test_a_failure_while_being_stopped_settles_the_message_with_its_own_error() -> None:
    gate = anyio.Event()
    entered = anyio.Event()
    outcome: list[BaseException] = []
    async with gr.Runtime() as rt:
        spec = gr.ChildSpec(actor=Gated, args=(gate, entered), shutdown=5.0)
        await rt.spawn(gr.SupervisorSpec(id="sup", children=(spec,)))
        ref = rt.ref("sup/gated")
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)

        async def ask() -> None:
            try:
                await ref.ask(FailAfterGate(), timeout=10)
            except gr.GreenroomError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            with anyio.fail_after(5):
                await entered.wait()
            cell = rt._system.cells["sup/gated"]
            tg.start_soon(root.terminate_child, "sup")
            await wait_until(lambda: cell.state.value == "stopping")
            gate.set()  # the handler fails while "sup" is stopping its children
        letters = rt.dead_letters.list(actor="sup/gated")
    # The handler's own failure, not ActorStopped: the stop did not cause it.
    [error] = outcome
    assert isinstance(error, gr.HandlerError)
    assert error.error_type == "builtins.RuntimeError" or error.error_type == "RuntimeError"
    assert [dl.reason for dl in letters] == ["handler_failed"]
    assert letters[0].error.message == "failed while its supervisor was stopping"
