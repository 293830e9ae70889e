"""Death watch: ``ctx.watch`` / ``ctx.unwatch`` and the ``Terminated`` message.

Each test drives a :class:`Watcher` with asks (so its watch calls run in its
own task, as in real code) and reads what it was told from a memory stream.
"Nothing more arrived" is checked with a barrier: a Terminated is put in the
watcher's mailbox when the watched actor closes, so once that close is done
an ask queued behind it (``Count``) sees everything sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import msgspec
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes
from tests.actors._support import (
    NO_BACKOFF,
    Boom,
    Crash,
    Exit,
    Log,
    Ping,
    Recorder,
    child,
    supervisor,
)

pytestmark = pytest.mark.anyio

Refs = dict[str, "gr.ActorRef"]


class Watch(gr.Message):
    name: str


class Unwatch(gr.Message):
    name: str


class Count(gr.Message):
    """Answered with how many Terminated the watcher has handled."""


class Block(gr.Message):
    """Makes the watcher wait on its gate."""


class Gate:
    """``entered`` is set when the watcher blocks; it waits until ``opened`` is set."""

    def __init__(self) -> None:
        self.entered = anyio.Event()
        self.opened = anyio.Event()


class Watcher(gr.Actor):
    """Watches the refs in ``refs`` on request; sends every Terminated to ``out``."""

    def __init__(
        self,
        refs: Refs,
        out: MemoryObjectSendStream[gr.Terminated],
        gate: Gate | None = None,
    ) -> None:
        self.refs = refs
        self.out = out
        self.gate = gate
        self.seen: list[gr.Terminated] = []

    @gr.handler
    async def watch(self, msg: Watch) -> str:
        return self.ctx.watch(self.refs[msg.name]).name

    @gr.handler
    async def unwatch(self, msg: Unwatch) -> None:
        self.ctx.unwatch(self.refs[msg.name])

    @gr.handler
    async def terminated(self, msg: gr.Terminated) -> None:
        self.seen.append(msg)
        self.out.send_nowait(msg)

    @gr.handler
    async def count(self, msg: Count) -> int:
        return len(self.seen)

    @gr.handler
    async def block(self, msg: Block) -> None:
        assert self.gate is not None
        self.gate.entered.set()
        await self.gate.opened.wait()

    @gr.handler
    async def crash(self, msg: Crash) -> None:
        raise Boom("watcher crashed")


class Blind(gr.Actor):
    """Has no handler for Terminated."""

    def __init__(self, refs: Refs) -> None:
        self.refs = refs

    @gr.handler
    async def watch(self, msg: Watch) -> str:
        try:
            self.ctx.watch(self.refs[msg.name])
        except gr.UsageError as error:
            return str(error)
        return "watched"


class CatchAll(gr.Actor):
    """Handles every message through a handler of greenroom.Message."""

    def __init__(self, refs: Refs, out: MemoryObjectSendStream[gr.Terminated]) -> None:
        self.refs = refs
        self.out = out

    @gr.handler
    async def any(self, msg: gr.Message) -> None:
        if isinstance(msg, Watch):
            self.ctx.watch(self.refs[msg.name])
        elif isinstance(msg, gr.Terminated):
            self.out.send_nowait(msg)


Stream = tuple[MemoryObjectSendStream[gr.Terminated], MemoryObjectReceiveStream[gr.Terminated]]


@pytest.fixture
def stream() -> Iterator[Stream]:
    send, receive = anyio.create_memory_object_stream[gr.Terminated](100)
    with send, receive:
        yield send, receive


async def _watcher(rt: gr.Runtime, refs: Refs, stream: Stream, **options: object) -> gr.ActorRef:
    spec = gr.ChildSpec(
        actor=Watcher,
        id="watcher",
        args=(refs, stream[0], options.pop("gate", None)),
        retry=gr.RetryPolicy(max_attempts=1, backoff=NO_BACKOFF),
        **options,  # type: ignore[arg-type]
    )
    return await rt.spawn(spec)


async def _next(stream: Stream, timeout: float = 3.0) -> gr.Terminated:
    with anyio.fail_after(timeout):
        return await stream[1].receive()


async def _watch(watcher: gr.ActorRef, name: str) -> None:
    assert await watcher.ask(Watch(name=name)) == name


# -- when Terminated comes, and why -----------------------------------------------


async def test_terminated_arrives_once_when_the_watched_actor_stops_itself(
    stream: Stream,
) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log(), restart="transient"))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        await refs["a"].tell(Exit())
        got = await _next(stream)
        assert got == gr.Terminated(actor="a", reason="normal")
        assert await watcher.ask(Count()) == 1


async def test_terminated_says_stopped_when_the_actor_is_stopped_by_the_runtime(
    stream: Stream,
) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        await rt.stop("a")
        assert await _next(stream) == gr.Terminated(actor="a", reason="stopped")
        assert await watcher.ask(Count()) == 1


async def test_terminated_carries_the_error_of_a_failure_that_is_not_restarted(
    stream: Stream,
) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log(), restart="temporary"))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        await refs["a"].tell(Crash())
        got = await _next(stream)
        assert (got.actor, got.reason) == ("a", "failed")
        assert got.error is not None
        assert got.error.type.endswith("Boom")
        assert got.error.message == "a crashed"
        assert await watcher.ask(Count()) == 1


async def test_terminated_arrives_when_a_failure_passes_the_restart_intensity(
    stream: Stream,
) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        # sup is temporary, so its parent does not restart it when it gives up
        sup = await rt.spawn(
            supervisor("sup", child("a", log), child("b", log), max_restarts=0, restart="temporary")
        )
        refs: Refs = {"sup/a": rt.ref("sup/a"), "sup/b": rt.ref("sup/b"), "sup": sup}
        watcher = await _watcher(rt, refs, stream)
        for name in refs:
            await _watch(watcher, name)
        await refs["sup/a"].tell(Crash())
        got = {t.actor: t for t in [await _next(stream) for _ in range(3)]}
        assert got["sup/a"].reason == "failed"
        assert got["sup/a"].error is not None
        assert got["sup/a"].error.type.endswith("Boom")
        assert got["sup/b"] == gr.Terminated(actor="sup/b", reason="stopped")
        assert got["sup"].reason == "failed"  # it escalated
        assert got["sup"].error is not None
        assert got["sup"].error.type.endswith("Escalated")
        assert await watcher.ask(Count()) == 3


class BadRestart(Recorder):
    """Its ``on_restart`` raises: every restart of it fails."""

    async def on_restart(self, error: gr.ErrorInfo) -> None:
        raise Boom(f"{self.ctx.name} cannot restart")


async def test_terminated_carries_the_error_when_the_restart_itself_fails(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        a = child("a", Log(), actor=BadRestart, restart="transient")
        await rt.spawn(supervisor("sup", a, max_restarts=2, restart="temporary"))
        refs: Refs = {"sup/a": rt.ref("sup/a")}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "sup/a")
        await refs["sup/a"].tell(Crash())
        got = await _next(stream)
        assert (got.actor, got.reason) == ("sup/a", "failed")
        assert got.error is not None
        assert got.error.message == "sup/a cannot restart"
        assert await watcher.ask(Count()) == 1


async def test_a_restart_is_not_a_termination(stream: Stream) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", log, restart="permanent"))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        for _ in range(2):
            await refs["a"].tell(Crash())
        assert await refs["a"].ask(Ping()) == "a"  # restarted twice, running
        assert log.of("restart") == [("restart", "a"), ("restart", "a")]
        assert await watcher.ask(Count()) == 0
        # The watch is still on the restarted actor, and its reason is fresh:
        # the failures before the restarts are not why it stops now.
        await rt.stop("a")
        assert await _next(stream) == gr.Terminated(actor="a", reason="stopped")


async def test_a_permanent_actor_that_stops_itself_is_restarted_not_terminated(
    stream: Stream,
) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log(), restart="permanent"))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        await refs["a"].tell(Exit())
        assert await refs["a"].ask(Ping()) == "a"
        assert await watcher.ask(Count()) == 0


async def test_watching_an_actor_already_stopped_delivers_noproc_at_once(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        await rt.stop("a")
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        assert await _next(stream) == gr.Terminated(actor="a", reason="noproc")
        assert await watcher.ask(Count()) == 1


async def test_watching_a_ref_whose_name_runs_again_watches_the_new_incarnation(
    stream: Stream,
) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        await rt.stop("a")
        await rt.spawn(child("a", Log()))  # the old ref finds it, as a send would
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        assert await watcher.ask(Count()) == 0
        await rt.stop("a")
        assert await _next(stream) == gr.Terminated(actor="a", reason="stopped")


# -- one watch, one message ---------------------------------------------------------


async def test_watching_twice_is_one_notification(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        await _watch(watcher, "a")
        await rt.stop("a")
        await _next(stream)
        assert await watcher.ask(Count()) == 1


async def test_unwatch_stops_a_pending_notification(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        await watcher.ask(Unwatch(name="a"))
        await rt.stop("a")  # its close is done: a Terminated would be queued by now
        assert await watcher.ask(Count()) == 0


async def test_unwatch_of_an_actor_not_watched_does_nothing(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream)
        await watcher.ask(Unwatch(name="a"))
        assert await watcher.ask(Count()) == 0


async def test_each_watcher_gets_its_own_terminated(stream: Stream) -> None:
    other = anyio.create_memory_object_stream[gr.Terminated](10)
    with other[0], other[1]:
        await _each_watcher(stream, other)


async def _each_watcher(stream: Stream, other: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        first = await _watcher(rt, refs, stream)
        second = await rt.spawn(Watcher, name="second", args=(refs, other[0]))
        await _watch(first, "a")
        await _watch(second, "a")
        await rt.stop("a")
        assert await _next(stream) == await _next(other)
        assert await first.ask(Count()) == await second.ask(Count()) == 1


# -- the watcher's side ------------------------------------------------------------------


async def test_a_stopped_watcher_is_forgotten_by_the_actors_it_watched(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        watched = refs["a"]._cell.watches
        assert watched is not None
        assert len(watched.watchers) == 1
        await rt.stop("watcher")
        assert not watched.watchers  # no leak: the stopped watcher is not kept
        letters = rt.statistics().dead_letters
        await rt.stop("a")
        assert rt.statistics().dead_letters == letters  # nothing sent to a closed mailbox


async def test_a_stopping_watcher_is_reported_to_its_own_watchers(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream)
        refs["watcher"] = watcher
        send, receive = anyio.create_memory_object_stream[gr.Terminated](10)
        with send, receive:
            second = await rt.spawn(Watcher, name="second", args=(refs, send))
            await _watch(second, "watcher")
            await _watch(watcher, "a")
            await rt.stop("watcher")
            assert await _next((send, receive)) == gr.Terminated(actor="watcher", reason="stopped")
            watched = refs["a"]._cell.watches
            assert watched is not None
            assert not watched.watchers


async def test_watches_are_kept_across_the_watchers_restart(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "a")
        await watcher.tell(Crash())
        assert await watcher.ask(Count()) == 0  # the restarted instance answers
        await rt.stop("a")
        assert await _next(stream) == gr.Terminated(actor="a", reason="stopped")


async def test_watch_without_a_terminated_handler_is_refused_naming_the_fix() -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        blind = await rt.spawn(Blind, name="blind", args=(refs,))
        answer = await blind.ask(Watch(name="a"))
        assert "no handler for greenroom.Terminated" in answer
        assert "async def on_terminated(self, msg: greenroom.Terminated)" in answer
        assert refs["a"]._cell.watches is None  # nothing was registered


async def test_a_handler_of_a_base_class_accepts_terminated(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        catch_all = await rt.spawn(CatchAll, name="catch_all", args=(refs, stream[0]))
        await catch_all.ask(Watch(name="a"))
        await rt.stop("a")
        assert await _next(stream) == gr.Terminated(actor="a", reason="stopped")


async def test_a_full_watcher_mailbox_delays_terminated_but_does_not_lose_it(
    stream: Stream,
) -> None:
    gate = Gate()
    async with gr.Runtime() as rt:
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(
            rt, refs, stream, gate=gate, mailbox=gr.MailboxConfig(capacity=1, overflow="fail")
        )
        await _watch(watcher, "a")
        await watcher.tell(Block())
        with anyio.fail_after(3):
            await gate.entered.wait()  # the watcher is busy
        await watcher.tell(Ping())  # waits in the mailbox: it is full now (no handler: dropped)
        with pytest.raises(gr.MailboxFull):
            await watcher.tell(Ping())
        await rt.stop("a")  # never blocks on the watcher's mailbox
        gate.opened.set()
        assert await _next(stream) == gr.Terminated(actor="a", reason="stopped")


# -- the message ----------------------------------------------------------------------------


def test_terminated_is_a_frozen_tagged_message_that_round_trips_msgpack() -> None:
    error = gr.ErrorInfo(type="tests.Boom", message="it broke")
    body = gr.Terminated(actor="sup/a", reason="failed", error=error, node="n1")
    gr.mailbox.check_message(body)
    assert body.__struct_config__.frozen
    assert body.__struct_config__.tag == "greenroom.Terminated"
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(body), type=gr.Terminated)
    assert decoded == body
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(
            msgspec.msgpack.encode({"type": "greenroom.Terminated", "actor": "a", "reason": "?"}),
            type=gr.Terminated,
        )


async def test_terminated_goes_through_a_durable_mailbox(stream: Stream, tmp_path: Path) -> None:
    async with (
        SqliteMailboxes(tmp_path / "mail.db") as boxes,
        gr.Runtime(mailboxes={"durable": boxes}) as rt,
    ):
        refs: Refs = {"a": await rt.spawn(child("a", Log()))}
        watcher = await _watcher(rt, refs, stream, mailbox=gr.MailboxConfig(kind="durable"))
        await _watch(watcher, "a")
        await refs["a"].tell(Crash())  # permanent: restarted, not terminated
        assert await refs["a"].ask(Ping()) == "a"
        await rt.stop("a")
        got = await _next(stream)
        assert got == gr.Terminated(actor="a", reason="stopped")
        assert boxes.statistics().rows >= 2  # its put and ack were committed


# -- pools ------------------------------------------------------------------------------------


async def test_watching_a_pool_member_works_like_any_actor(stream: Stream) -> None:
    async with gr.Runtime() as rt:
        worker = gr.ChildSpec(actor=Recorder, args=(Log(),))
        pool = await rt.spawn(gr.PoolSpec(id="pool", worker=worker, size=3))
        refs: Refs = {"pool/2": rt.ref("pool/2"), "pool": pool}
        watcher = await _watcher(rt, refs, stream)
        await _watch(watcher, "pool/2")
        await _watch(watcher, "pool")
        assert isinstance(pool, gr.PoolRef)
        await pool.resize(2)
        assert await _next(stream) == gr.Terminated(actor="pool/2", reason="stopped")
        assert await watcher.ask(Count()) == 1  # the pool itself still runs
        await rt.stop("pool")
        assert await _next(stream) == gr.Terminated(actor="pool", reason="stopped")


# -- the protocol, as a property ------------------------------------------------------------

Op = tuple[str, int]  # ("watch" | "unwatch" | "stop" | "crash", target)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["watch", "unwatch", "stop", "crash"]), st.integers(0, 2)),
        max_size=14,
    )
)
def test_every_watch_brings_exactly_one_terminated_and_unwatch_none(ops: list[Op]) -> None:
    """Against a model: a watch of a live actor pays out once when it stops, a
    watch of a stopped one at once, an unwatched one never; crashes never."""

    async def main() -> None:
        out, received = anyio.create_memory_object_stream[gr.Terminated](100)
        with out, received:
            await run(out, received)

    async def run(
        out: MemoryObjectSendStream[gr.Terminated],
        received: MemoryObjectReceiveStream[gr.Terminated],
    ) -> None:
        async with gr.Runtime() as rt:
            names = [f"t{i}" for i in range(3)]
            refs: Refs = {n: await rt.spawn(child(n, Log(), restart="permanent")) for n in names}
            watcher = await rt.spawn(Watcher, name="watcher", args=(refs, out))
            alive = dict.fromkeys(names, True)
            watched = dict.fromkeys(names, False)
            expected: list[tuple[str, str]] = []
            for op, i in ops:
                name = names[i]
                if op == "watch":
                    await watcher.ask(Watch(name=name))
                    if not alive[name]:
                        expected.append((name, "noproc"))
                    else:
                        watched[name] = True
                elif op == "unwatch":
                    await watcher.ask(Unwatch(name=name))
                    watched[name] = False
                elif op == "stop" and alive[name]:
                    await rt.stop(name)
                    alive[name] = False
                    if watched[name]:
                        expected.append((name, "stopped"))
                        watched[name] = False
                elif op == "crash" and alive[name]:
                    await refs[name].tell(Crash())
                    assert await refs[name].ask(Ping()) == name  # restarted
            assert await watcher.ask(Count()) == len(expected)
            got = [received.receive_nowait() for _ in expected]
            assert [(t.actor, t.reason) for t in got] == expected

    gr.run(main)
