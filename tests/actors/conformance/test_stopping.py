"""Stopping a supervisor mid-restart, and failures during a stop.

Modelled on ``supervisor_SUITE``'s ``hanging_restart_loop`` (a supervisor whose
child keeps failing to restart still answers a request to shut down, since
OTP retries the restart through its own mailbox) and on Pekko's rule that a
failure during termination is reported as that failure: stopping a supervisor
in a restart loop or during a delayed restart ends the loop at once and stops
the subtree; a child whose handler fails while it is being stopped keeps its
own error.
"""

from __future__ import annotations

import time

import anyio
import pytest

import greenroom as gr
from tests.actors._support import (
    NO_BACKOFF,
    Boom,
    Crash,
    Log,
    Ping,
    Recorder,
    child,
    statuses,
    supervisor,
    wait_until,
)

pytestmark = pytest.mark.anyio


class NeverRestarts(Recorder):
    """Starts once; every later instance fails in ``on_restart``."""

    async def on_restart(self, error: gr.ErrorInfo) -> None:
        self.log.record("restart_failed", self.ctx.name)
        raise Boom("cannot restart")


async def _terminate_promptly(rt: gr.Runtime, child_id: str, bound: float = 2.0) -> float:
    root = rt.ref("root")
    assert isinstance(root, gr.SupervisorRef)
    started = time.monotonic()
    with anyio.fail_after(bound):
        await root.terminate_child(child_id)
    return time.monotonic() - started


async def test_stopping_a_supervisor_in_a_restart_loop_ends_the_loop() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(
            supervisor(
                "sup",
                child("ok", log),
                child("bad", log, actor=NeverRestarts),
                max_restarts=1_000_000,
                within=60.0,
                backoff=NO_BACKOFF,
            )
        )
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/bad").ask(Crash())
        await wait_until(lambda: log.of("restart_failed").count(("restart_failed", "sup/bad")) > 3)
        await _terminate_promptly(rt, "sup")
        attempts = len(log.of("restart_failed"))
        for name in ("sup", "sup/ok", "sup/bad"):
            with pytest.raises(gr.ActorStopped):
                rt.ref(name)
        # nothing restarts after the stop: one more turn of the loop would show
        await rt.spawn(child("probe", log))
        assert await rt.ref("probe").ask(Ping()) == "probe"
        assert len(log.of("restart_failed")) == attempts
        assert ("stop", "sup/ok") in log


async def test_a_restart_loop_without_backoff_lets_other_actors_run() -> None:
    # OTP retries a failed restart through the supervisor's own mailbox, so
    # it keeps serving; here the loop yields between attempts.
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(child("other", log))
        await rt.spawn(
            supervisor(
                "sup",
                child("bad", log, actor=NeverRestarts),
                max_restarts=1_000_000,
                within=60.0,
                backoff=NO_BACKOFF,
            )
        )
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/bad").ask(Crash())
        other = rt.ref("other")
        with anyio.fail_after(2):
            for _ in range(20):
                assert await other.ask(Ping()) == "other"
        before = len(log.of("restart_failed"))
        await wait_until(lambda: len(log.of("restart_failed")) > before)
        await _terminate_promptly(rt, "sup")


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all"])
async def test_stopping_a_supervisor_during_a_delayed_restart_cancels_it(strategy: str) -> None:
    log = Log()
    backoff = gr.Backoff(initial=60.0, maximum=60.0, jitter=0.0)
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor("sup", child("a", log), child("b", log), strategy=strategy, backoff=backoff)
        )
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        assert "restarting" in (await statuses(sup)).values()
        log.clear()
        elapsed = await _terminate_promptly(rt, "sup")
        assert elapsed < 1.0
    assert log.of("start", "restart") == []
    if strategy == "one_for_one":
        assert log.of("stop") == [("stop", "sup/a")], "b was stopped when it failed"
    else:
        assert log.of("stop") == [], "the whole group was stopped for the restart"


class Gate(gr.Message):
    """Makes :class:`Gated` wait for its gate, then fail."""


class Gated(Recorder):
    def __init__(self, log: Log, gate: anyio.Event, entered: anyio.Event) -> None:
        super().__init__(log)
        self.gate = gate
        self.entered = entered

    @gr.handler
    async def gated(self, msg: Gate) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        if envelope.attempt > 1:
            return envelope.attempt
        self.entered.set()
        await self.gate.wait()
        raise Boom("failed during the stop")


async def test_a_child_failing_while_its_group_restarts_keeps_its_error_and_retry() -> None:
    # The failure is the handler's own, not a consequence of the stop: the
    # message is retried by the next instance per its RetryPolicy.
    log, gate, entered = Log(), anyio.Event(), anyio.Event()
    retry = gr.RetryPolicy(max_attempts=2, backoff=NO_BACKOFF)
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor(
                "sup",
                gr.ChildSpec(
                    actor=Gated, id="g", args=(log, gate, entered), retry=retry, shutdown=5.0
                ),
                child("b", log),
                strategy="one_for_all",
            )
        )
        cell = rt._system.cells["sup/g"]
        answers: list[int] = []

        async def ask() -> None:
            answers.append(await rt.ref("sup/g").ask(Gate(), timeout=5.0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            with anyio.fail_after(3):
                await entered.wait()
            with pytest.raises(gr.HandlerError):
                await rt.ref("sup/b").ask(Crash())  # g is halted for the group restart
            await wait_until(lambda: cell.state.value == "restarting")
            gate.set()
        assert answers == [2]
        assert await statuses(sup) == {"g": "running", "b": "running"}
        assert rt.dead_letters.list(actor="sup/g") == []


async def test_a_child_failing_while_being_terminated_is_dead_lettered_with_its_error() -> None:
    log, gate, entered = Log(), anyio.Event(), anyio.Event()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor("sup", gr.ChildSpec(actor=Gated, id="g", args=(log, gate, entered)))
        )
        cell = rt._system.cells["sup/g"]
        await rt.ref("sup/g").tell(Gate())
        with anyio.fail_after(3):
            await entered.wait()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.terminate_child, "g")
            await wait_until(lambda: cell.state.value == "stopping")
            gate.set()
        [letter] = rt.dead_letters.list(actor="sup/g")
        assert letter.reason == "handler_failed"
        assert letter.error.message == "failed during the stop"
        assert await statuses(sup) == {"g": "stopped"}
