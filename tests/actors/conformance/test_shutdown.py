"""How children are stopped, as OTP's ``supervisor`` stops them.

Modelled on ``supervisor_SUITE``'s ``sup_stop_infinity``, ``sup_stop_timeout``
and ``sup_stop_brutal_kill``: a child's ``shutdown`` is one grace period for
its current handler and ``on_stop`` together; ``"brutal_kill"`` cancels at once
and skips ``on_stop``; a supervisor or pool child waits for its own subtree
(``math.inf``) by default; static children stop in reverse start order, a
pool's workers all at once.
"""

from __future__ import annotations

import math
import time

import anyio
import pytest

import greenroom as gr
from tests.actors._support import Log, Recorder, child, supervisor, wait_until

pytestmark = pytest.mark.anyio


class Hang(gr.Message):
    """Makes :class:`Stubborn` wait until cancelled."""


class Stubborn(Recorder):
    """Hangs on :class:`Hang`; its ``on_stop`` waits for ``cleanup`` (``None``: forever)."""

    def __init__(self, log: Log, entered: anyio.Event, cleanup: anyio.Event | None = None) -> None:
        super().__init__(log)
        self.entered = entered
        self.cleanup = cleanup

    @gr.handler
    async def hang(self, msg: Hang) -> None:
        self.entered.set()
        try:
            await anyio.sleep_forever()
        except BaseException:
            self.log.record("cancelled", self.ctx.name)
            raise

    async def on_stop(self) -> None:
        self.log.record("stop", self.ctx.name)
        try:
            if self.cleanup is None:
                await anyio.sleep_forever()
            else:
                await self.cleanup.wait()
        except BaseException:
            self.log.record("stop_cut", self.ctx.name)
            raise
        self.log.record("stopped", self.ctx.name)


async def _root(rt: gr.Runtime) -> gr.SupervisorRef:
    root = rt.ref("root")
    assert isinstance(root, gr.SupervisorRef)
    return root


async def _timed_terminate(sup: gr.SupervisorRef, child_id: str) -> float:
    started = time.monotonic()
    with anyio.fail_after(10):
        await sup.terminate_child(child_id)
    return time.monotonic() - started


def test_default_shutdown_is_per_child_type_as_in_otp() -> None:
    # OTP: 5000 ms for a worker, infinity for a supervisor.
    assert gr.ChildSpec(actor=Recorder).shutdown == 5.0
    assert gr.SupervisorSpec(id="s").shutdown == math.inf
    worker = gr.ChildSpec(actor=Recorder)
    assert gr.PoolSpec(id="p", worker=worker, size=1).shutdown == math.inf


@pytest.mark.parametrize("bad", ["kill", "infinity", "", "brutal"])
def test_shutdown_refuses_any_word_but_brutal_kill(bad: str) -> None:
    with pytest.raises(gr.InvalidSpec, match="brutal_kill"):
        gr.ChildSpec(actor=Recorder, shutdown=bad)  # type: ignore[arg-type]
    assert gr.ChildSpec(actor=Recorder, shutdown="brutal_kill").shutdown == "brutal_kill"
    assert gr.SupervisorSpec(id="s", shutdown="brutal_kill").shutdown == "brutal_kill"


async def test_the_grace_period_covers_the_handler_and_on_stop_once() -> None:
    # A hung handler used up the grace period: on_stop gets what is left
    # of the same deadline (none), not a second period of its own.
    grace = 0.5
    log, entered = Log(), anyio.Event()
    async with gr.Runtime() as rt:
        spec = gr.ChildSpec(actor=Stubborn, id="s", args=(log, entered), shutdown=grace)
        sup = await rt.spawn(supervisor("sup", spec))
        await rt.ref("sup/s").tell(Hang())
        with anyio.fail_after(3):
            await entered.wait()
        elapsed = await _timed_terminate(sup, "s")
    assert elapsed >= grace - 0.01
    # twice the grace (handler, then on_stop) would be 1.0 s
    assert elapsed < grace * 1.6, f"the stop took {elapsed:.3f} s for one grace of {grace} s"
    assert log.of("cancelled", "stop", "stop_cut", "stopped") == [
        ("cancelled", "sup/s"),
        ("stop", "sup/s"),
        ("stop_cut", "sup/s"),
    ]


async def test_on_stop_gets_what_the_handler_left_of_the_grace_period() -> None:
    grace = 0.4
    log, entered = Log(), anyio.Event()
    async with gr.Runtime() as rt:
        # No handler running: on_stop has the whole period, and is cut at its end.
        spec = gr.ChildSpec(actor=Stubborn, id="s", args=(log, entered), shutdown=grace)
        sup = await rt.spawn(supervisor("sup", spec))
        elapsed = await _timed_terminate(sup, "s")
    assert grace - 0.01 <= elapsed < grace * 1.5
    assert log.of("stop", "stop_cut", "stopped") == [("stop", "sup/s"), ("stop_cut", "sup/s")]


async def test_a_cleanup_within_the_grace_period_completes() -> None:
    log, entered = Log(), anyio.Event()
    async with gr.Runtime() as rt:
        done = anyio.Event()
        done.set()  # a cleanup that awaits and has what it waits for
        spec = gr.ChildSpec(actor=Stubborn, id="s", args=(log, entered, done), shutdown=5.0)
        sup = await rt.spawn(supervisor("sup", spec))
        elapsed = await _timed_terminate(sup, "s")
    assert elapsed < 2.0
    assert log.of("stop", "stop_cut", "stopped") == [("stop", "sup/s"), ("stopped", "sup/s")]


async def test_brutal_kill_cancels_at_once_and_skips_on_stop() -> None:
    # OTP sup_stop_brutal_kill: the child is killed unconditionally.
    log, entered = Log(), anyio.Event()
    outcome: list[BaseException] = []
    async with gr.Runtime() as rt:
        spec = gr.ChildSpec(actor=Stubborn, id="s", args=(log, entered), shutdown="brutal_kill")
        sup = await rt.spawn(supervisor("sup", spec))
        ref = rt.ref("sup/s")

        async def ask() -> None:
            try:
                await ref.ask(Hang(), timeout=10)
            except gr.GreenroomError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            with anyio.fail_after(3):
                await entered.wait()
            elapsed = await _timed_terminate(sup, "s")
        assert elapsed < 1.0
    assert log.of("cancelled", "stop") == [("cancelled", "sup/s")]
    assert [type(e) for e in outcome] == [gr.ActorStopped]


async def test_brutal_kill_of_a_supervisor_kills_its_children_too() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        inner = supervisor("inner", child("a", log), child("b", log), shutdown="brutal_kill")
        sup = await rt.spawn(supervisor("sup", inner))
        log.clear()
        await _timed_terminate(sup, "inner")
        for name in ("sup/inner", "sup/inner/a", "sup/inner/b"):
            with pytest.raises(gr.ActorStopped):
                rt.ref(name)
    assert log == [], "killed children run no on_stop"


async def test_a_supervisor_child_waits_for_its_subtree_by_default() -> None:
    # OTP sup_stop_infinity: the subtree gets the time it takes, each child
    # within its own shutdown; here a worker with shutdown=inf whose cleanup
    # ends when the test says so.
    log = Log()
    release = anyio.Event()

    class Cleanup(Recorder):
        async def on_stop(self) -> None:
            self.log.record("stop", self.ctx.name)
            await release.wait()
            self.log.record("stopped", self.ctx.name)

    async with gr.Runtime() as rt:
        worker = gr.ChildSpec(actor=Cleanup, id="w", args=(log,), shutdown=math.inf)
        sup = await rt.spawn(supervisor("sup", supervisor("inner", worker)))
        done = anyio.Event()

        async def terminate() -> None:
            await sup.terminate_child("inner", timeout=10)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(terminate)
            await wait_until(lambda: ("stop", "sup/inner/w") in log)
            assert not done.is_set()
            release.set()
            with anyio.fail_after(3):
                await done.wait()
    assert log.of("stop", "stopped") == [("stop", "sup/inner/w"), ("stopped", "sup/inner/w")]


async def test_a_child_past_its_shutdown_is_cancelled_and_its_siblings_stop_cleanly() -> None:
    # OTP sup_stop_timeout: child2 sleeps past its 1000 ms and is killed;
    # child1 stops with reason shutdown.
    log, entered = Log(), anyio.Event()
    async with gr.Runtime() as rt:
        await rt.spawn(
            supervisor(
                "sup",
                child("first", log),
                gr.ChildSpec(actor=Stubborn, id="slow", args=(log, entered), shutdown=0.1),
            )
        )
        await rt.ref("sup/slow").tell(Hang())
        with anyio.fail_after(3):
            await entered.wait()
        log.clear()
        elapsed = await _timed_terminate(await _root(rt), "sup")
    assert elapsed < 1.5
    assert log.of("cancelled", "stop", "stop_cut") == [
        ("cancelled", "sup/slow"),
        ("stop", "sup/slow"),
        ("stop_cut", "sup/slow"),
        ("stop", "sup/first"),
    ]


async def test_static_children_stop_in_reverse_start_order_restarted_ones_in_their_place() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("a", log), child("b", log)))
        await sup.start_child(child("c", log))
        await sup.terminate_child("b")
        await sup.restart_child("b")  # keeps its place between a and c
        log.clear()
        await _timed_terminate(await _root(rt), "sup")
    assert log == [("stop", "sup/c"), ("stop", "sup/b"), ("stop", "sup/a")]


async def test_pool_workers_are_stopped_concurrently() -> None:
    # OTP stops a simple_one_for_one supervisor's children all at once. Each
    # worker's on_stop waits until every worker is in on_stop: one at a time,
    # the first would wait out its whole grace period (5 s).
    size = 4
    in_stop: list[str] = []
    everyone = anyio.Event()

    class Rendezvous(gr.Actor):
        async def on_stop(self) -> None:
            in_stop.append(self.ctx.name)
            if len(in_stop) == size:
                everyone.set()
            await everyone.wait()

    async with gr.Runtime() as rt:
        worker = gr.ChildSpec(actor=Rendezvous, shutdown=5.0)
        await rt.spawn(gr.PoolSpec(id="pool", worker=worker, size=size))
        elapsed = await _timed_terminate(await _root(rt), "pool")
    assert elapsed < 2.0
    assert sorted(in_stop) == [f"pool/{n}" for n in range(size)]
