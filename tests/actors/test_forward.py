"""ctx.forward and ctx.defer: a message handed on keeps its ask, and the asker never hangs."""

from __future__ import annotations

import anyio
import pytest

import greenroom as gr
from greenroom.actors import Deferred
from greenroom.mailbox import Envelope, keyed_id

pytestmark = pytest.mark.anyio

ONE_ATTEMPT = gr.RetryPolicy(max_attempts=1)


class Ping(gr.Message):
    n: int


class Pong(gr.Message):
    n: int


class Boom(gr.Message):
    pass


class Hold(gr.Message):
    pass


class Release(gr.Message):
    pass


class Back(gr.Actor):
    """The actor forwarded to: answers, records what it got, fails or blocks on demand."""

    def __init__(self, seen: list[Envelope], gate: anyio.Event | None = None) -> None:
        self.seen = seen
        self.gate = gate

    @gr.handler
    async def ping(self, msg: Ping) -> str:
        envelope = self.ctx.envelope
        assert envelope is not None
        self.seen.append(envelope)
        return f"{self.ctx.name} answers {msg.n}"

    @gr.handler
    async def pong(self, msg: Pong) -> str:
        return f"pong {msg.n}"

    @gr.handler
    async def boom(self, msg: Boom) -> None:
        raise ValueError("the back end broke")

    @gr.handler
    async def hold(self, msg: Hold) -> None:
        if self.gate is not None:
            await self.gate.wait()


class Front(gr.Actor):
    """Forwards to the actor named ``to``; what it would reply itself must never arrive."""

    def __init__(self, to: str, log: dict[str, object], forwarded: anyio.Event | None = None):
        self.to = to
        self.log = log
        self.forwarded = forwarded

    @gr.handler
    async def ping(self, msg: Ping) -> str:
        self.log["front"] = self.ctx.envelope
        self.log["front_correlation"] = self.ctx.envelope.correlation_id  # type: ignore[union-attr]
        await self.ctx.forward(self.ctx.runtime.ref(self.to))
        self.log["after_correlation"] = self.ctx.envelope.correlation_id  # type: ignore[union-attr]
        if self.forwarded is not None:
            self.forwarded.set()
        return "the front's own value"

    @gr.handler
    async def pong(self, msg: Pong) -> str:
        await self.ctx.forward(self.ctx.runtime.ref(self.to), Ping(n=msg.n * 10))
        return "the front's own value"

    @gr.handler
    async def boom(self, msg: Boom) -> str:
        try:
            await self.ctx.forward(self.ctx.runtime.ref(self.to))
        except gr.ActorStopped:
            return "answered by the front: the back end is gone"
        return "the front's own value"


async def test_a_forwarded_ask_is_answered_by_the_target_not_the_forwarder() -> None:
    seen: list[Envelope] = []
    async with gr.Runtime() as rt:
        await rt.spawn(Back, name="back", args=(seen,))
        front = await rt.spawn(Front, name="front", args=("back", {}))
        assert await front.ask(Ping(n=1)) == "back answers 1"
        assert await front.ask(Pong(n=2)) == "back answers 20"  # a new body
        assert rt.statistics().late_replies == 0  # the front's value was never sent


async def test_the_forward_keeps_the_ask_the_deadline_and_the_trace_as_a_child_span() -> None:
    seen: list[Envelope] = []
    log: dict[str, object] = {}
    async with gr.Runtime() as rt:
        await rt.spawn(Back, name="back", args=(seen,))
        front = await rt.spawn(Front, name="front", args=("back", log))
        await front.ask(Ping(n=1), timeout=3.0)
    first = log["front"]
    assert isinstance(first, Envelope)
    onward = seen[0]
    assert log["front_correlation"] is not None
    assert onward.correlation_id == log["front_correlation"]
    assert onward.reply_to == rt.node
    assert onward.deadline is not None
    assert onward.deadline == first.deadline
    assert onward.trace_id == first.trace_id
    assert onward.parent_span_id == first.span_id
    assert onward.sender == "front"
    assert onward.id != first.id
    assert log["after_correlation"] is None  # the delivery no longer holds the ask


async def test_a_forwarded_tell_stays_a_tell() -> None:
    seen: list[Envelope] = []
    async with gr.Runtime() as rt:
        back = await rt.spawn(Back, name="back", args=(seen,))
        front = await rt.spawn(Front, name="front", args=("back", {}))
        await front.tell(Ping(n=1))
        await front.ask(Ping(n=2))
        await back.ask(Pong(n=0))  # behind both forwards
        assert rt.statistics().late_replies == 0
    assert [e.correlation_id is None for e in seen] == [True, False]
    assert seen[0].deadline is None


async def test_a_forwarded_ask_whose_target_fails_raises_handler_error_from_the_target() -> None:
    async with gr.Runtime() as rt:
        await rt.spawn(Back, name="back", args=([],), retry=ONE_ATTEMPT)
        front = await rt.spawn(Front, name="front", args=("back", {}))
        with anyio.fail_after(5):
            await front.tell(Pong(n=0))  # the front is fine: keep it busy with something else
            with pytest.raises(gr.HandlerError) as caught:
                await front.ask(Boom())
    assert caught.value.actor == "back"
    assert caught.value.error_type == "ValueError"


async def test_a_forwarded_ask_of_a_type_the_target_cannot_handle_raises_unknown_message() -> None:
    class Picky(gr.Actor):
        @gr.handler
        async def pong(self, msg: Pong) -> int:
            return msg.n

    async with gr.Runtime() as rt:
        await rt.spawn(Picky, name="picky")
        front = await rt.spawn(Front, name="front", args=("picky", {}))
        with anyio.fail_after(5), pytest.raises(gr.UnknownMessage) as caught:
            await front.ask(Ping(n=1))
    assert caught.value.actor == "picky"


async def test_a_forwarded_ask_whose_target_stops_with_it_queued_raises_actor_stopped() -> None:
    gate = anyio.Event()
    forwarded = anyio.Event()
    failure: list[BaseException] = []

    async def ask(front: gr.ActorRef) -> None:
        try:
            await front.ask(Ping(n=1), timeout=5)
        except gr.GreenroomError as exc:
            failure.append(exc)

    async with gr.Runtime() as rt:
        back = await rt.spawn(gr.ChildSpec(actor=Back, id="back", args=([], gate), shutdown=0.0))
        front = await rt.spawn(Front, name="front", args=("back", {}, forwarded))
        await back.tell(Hold())  # the back end is busy: the forward waits in its mailbox
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, front)
                await forwarded.wait()
                root = rt.ref("root")
                assert isinstance(root, gr.SupervisorRef)
                await root.terminate_child("back")
    assert len(failure) == 1
    assert isinstance(failure[0], gr.ActorStopped)
    assert "back" in str(failure[0])


async def test_a_forward_to_a_stopped_target_raises_in_the_forwarder_which_keeps_the_ask() -> None:
    async with gr.Runtime() as rt:
        back = await rt.spawn(gr.ChildSpec(actor=Back, id="back", args=([],), restart="temporary"))
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        await root.terminate_child("back")
        catching = await rt.spawn(_StaleFront, name="catching", args=(back, True))
        assert await catching.ask(Boom()) == "answered here: back is stopped"
        failing = await rt.spawn(_StaleFront, name="failing", args=(back, False), retry=ONE_ATTEMPT)
        with anyio.fail_after(5), pytest.raises(gr.HandlerError) as caught:
            await failing.ask(Boom())
    assert caught.value.actor == "failing"  # the forwarder's own failure answers its ask
    assert caught.value.error_type.endswith("ActorStopped")


class _StaleFront(gr.Actor):
    def __init__(self, target: gr.ActorRef, catch: bool) -> None:
        self.target = target
        self.catch = catch

    @gr.handler
    async def boom(self, msg: Boom) -> str:
        try:
            await self.ctx.forward(self.target)
        except gr.ActorStopped as exc:
            if not self.catch:
                raise
            return f"answered here: {exc.actor} is stopped"
        return "forwarded"


async def test_a_forwarder_that_raises_after_forwarding_leaves_the_answer_to_the_target() -> None:
    class Careless(gr.Actor):
        @gr.handler
        async def ping(self, msg: Ping) -> None:
            await self.ctx.forward(self.ctx.runtime.ref("back"))
            raise RuntimeError("after the forward")

    async with gr.Runtime() as rt:
        await rt.spawn(Back, name="back", args=([],))
        careless = await rt.spawn(Careless, name="careless", retry=ONE_ATTEMPT)
        with anyio.fail_after(5):
            assert await careless.ask(Ping(n=3)) == "back answers 3"
        letters = rt.dead_letters.list(reason="handler_failed")
    assert [letter.actor for letter in letters] == ["careless"]
    assert letters[0].envelope.correlation_id is None  # the ask went with the forward


async def test_a_forward_through_a_pool_ref_is_routed_by_the_pool() -> None:
    seen: list[Envelope] = []
    async with gr.Runtime() as rt:
        pool = await rt.spawn(
            gr.PoolSpec(id="backs", size=3, worker=gr.ChildSpec(actor=Back, args=(seen,)))
        )

        class ToPool(gr.Actor):
            @gr.handler
            async def ping(self, msg: Ping) -> None:
                await self.ctx.forward(pool)

        front = await rt.spawn(ToPool, name="front")
        answers = {await front.ask(Ping(n=n)) for n in range(3)}
    assert {a.split()[0] for a in answers} == {"backs/0", "backs/1", "backs/2"}  # type: ignore[union-attr]


class Holder(gr.Actor):
    """Defers every Ping; Release forwards them all, in order, to ``back``."""

    def __init__(self, log: list[Deferred]) -> None:
        self.held = log

    @gr.handler
    async def ping(self, msg: Ping) -> str:
        self.held.append(self.ctx.defer())
        return "never sent"

    @gr.handler
    async def release(self, msg: Release) -> int:
        held, self.held[:] = list(self.held), []
        for deferred in held:
            await deferred.forward(self.ctx.runtime.ref("back"))
        return len(held)

    @gr.handler
    async def pong(self, msg: Pong) -> str:
        deferred = self.ctx.defer()
        deferred.reply(f"answered now, {msg.n}")
        with pytest.raises(gr.UsageError, match="settled already"):
            deferred.fail(ValueError("twice"))
        return "never sent"

    @gr.handler
    async def boom(self, msg: Boom) -> None:
        self.ctx.defer().fail(gr.ActorStopped("somewhere", "Boom"))


async def test_deferred_asks_are_held_then_forwarded_in_order_from_a_later_handler() -> None:
    seen: list[Envelope] = []
    held: list[Deferred] = []
    answers: list[object] = []

    async def ask(holder: gr.ActorRef, n: int) -> None:
        answers.append(await holder.ask(Ping(n=n), timeout=5))

    async with gr.Runtime() as rt:
        await rt.spawn(Back, name="back", args=(seen,))
        holder = await rt.spawn(Holder, name="holder", args=(held,))
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(ask, holder, n)
                    while len(held) <= n:  # one at a time, so the order is known
                        await anyio.lowlevel.checkpoint()
                assert all(d.is_ask and not d.settled for d in held)
                assert await holder.ask(Release()) == 3
        assert rt.statistics().late_replies == 0
    assert sorted(answers) == ["back answers 0", "back answers 1", "back answers 2"]  # type: ignore[type-var]
    assert [e.body for e in seen] == [Ping(n=0), Ping(n=1), Ping(n=2)]
    # each forward is a child of the delivery that was held, in its trace
    holder_spans = {(e.trace_id, e.parent_span_id) for e in seen}
    assert len(holder_spans) == 3


async def test_a_deferred_can_be_answered_or_failed_once() -> None:
    async with gr.Runtime() as rt:
        holder = await rt.spawn(Holder, name="holder", args=([],))
        assert await holder.ask(Pong(n=4)) == "answered now, 4"
        with pytest.raises(gr.ActorStopped, match="somewhere"):
            await holder.ask(Boom())


async def test_forward_and_defer_outside_a_handler_are_usage_errors() -> None:
    caught: list[BaseException] = []

    class Early(gr.Actor):
        async def on_start(self) -> None:
            try:
                self.ctx.defer()
            except gr.UsageError as exc:
                caught.append(exc)
            try:
                await self.ctx.forward(self.ctx.ref)
            except gr.UsageError as exc:
                caught.append(exc)

    async with gr.Runtime() as rt:
        await rt.spawn(Early)
    assert len(caught) == 2
    assert "inside a handler" in str(caught[0])


async def test_queued_counts_the_messages_waiting_behind_the_current_one() -> None:
    gate = anyio.Event()
    counts: list[int] = []

    class Counter(gr.Actor):
        @gr.handler
        async def hold(self, msg: Hold) -> None:
            await gate.wait()
            counts.append(self.ctx.queued)

        @gr.handler
        async def ping(self, msg: Ping) -> None:
            counts.append(self.ctx.queued)

    async with gr.Runtime() as rt:
        ref = await rt.spawn(Counter)
        await ref.tell(Hold())
        await ref.tell(Ping(n=1))
        await ref.tell(Ping(n=2))
        gate.set()
        await ref.ask(Ping(n=3))
    assert counts == [3, 2, 1, 0]


class Relay(gr.Actor):
    """Forwards to ``middle``, which forwards to ``back``; also tells ``back`` afresh."""

    def __init__(self, log: dict[str, object]) -> None:
        self.log = log

    @gr.handler
    async def ping(self, msg: Ping) -> None:
        self.log["relay"] = self.ctx.envelope
        await self.ctx.forward(self.ctx.runtime.ref("middle"))

    @gr.handler
    async def pong(self, msg: Pong) -> None:
        await self.ctx.tell(self.ctx.runtime.ref("back"), Ping(n=msg.n))  # a new request


async def test_a_forward_keeps_the_causation_of_the_first_envelope_through_every_hop() -> None:
    seen: list[Envelope] = []
    log: dict[str, object] = {}
    async with gr.Runtime() as rt:
        await rt.spawn(Back, name="back", args=(seen,))
        await rt.spawn(Front, name="middle", args=("back", {}))
        relay = await rt.spawn(Relay, name="relay", args=(log,))
        assert await relay.ask(Ping(n=1)) == "back answers 1"
        await relay.tell(Pong(n=2))
        await rt.ref("back").ask(Pong(n=0))  # behind the tell
    first = log["relay"]
    assert isinstance(first, Envelope)
    assert first.causation_id is None  # a tell/ask from outside serves its own id
    forwarded, told = seen
    assert forwarded.causation == first.id != forwarded.id  # two hops, one request
    assert told.causation_id is None  # a tell from a handler starts its own request
    assert told.causation == told.id


async def test_a_deferred_forward_keeps_the_causation_of_the_held_envelope() -> None:
    seen: list[Envelope] = []
    async with gr.Runtime() as rt:
        back = await rt.spawn(Back, name="back", args=(seen,))
        holder = await rt.spawn(Holder, name="holder", args=([],))
        await holder.tell(Ping(n=3), idempotency_key="ping-3")
        await holder.ask(Release())  # returns once the held message went on
        await back.ask(Pong(n=0))
    [onward] = seen
    assert onward.causation == keyed_id("holder", "ping-3") != onward.id
