"""A failed message is settled by the actor's cell, not by its supervisor.

The supervisor does what an OTP supervisor does (start, stop, restart,
escalate); retrying a message, its backoff and its dead letter belong to the
cell (``Cell.fail``), which settles the message first and then reports the
failure with the delay the restart must respect. So an ``ask`` gets its
``HandlerError`` even while the supervisor is busy, and a failure reported to
a supervisor that never handles it loses no message.
"""

from __future__ import annotations

import time

import anyio
import pytest

import greenroom as gr
from tests.actors._support import (
    ONE_ATTEMPT,
    Boom,
    Crash,
    Log,
    Recorder,
    child,
    statuses,
    supervisor,
    wait_until,
)

pytestmark = pytest.mark.anyio


class Flake(gr.Message):
    """Fails on its first attempt at :class:`FlakyOnce`, succeeds on the next."""


class FlakyOnce(Recorder):
    @gr.handler
    async def flake(self, msg: Flake) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        if envelope.attempt == 1:
            raise Boom("first attempt fails")
        return envelope.attempt


def _slow_start(release: anyio.Event, entered: anyio.Event) -> type[gr.Actor]:
    class SlowStart(gr.Actor):
        async def on_start(self) -> None:
            entered.set()
            await release.wait()

    return SlowStart


async def test_a_failed_ask_is_answered_while_the_supervisor_is_busy() -> None:
    log, release, entered = Log(), anyio.Event(), anyio.Event()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("w", log, retry=ONE_ATTEMPT)))
        async with anyio.create_task_group() as tg:
            # The supervisor's task is held by a start_child until `release`.
            tg.start_soon(sup.start_child, gr.ChildSpec(actor=_slow_start(release, entered)))
            with anyio.fail_after(3):
                await entered.wait()
            with anyio.fail_after(2), pytest.raises(gr.HandlerError):
                await rt.ref("sup/w").ask(Crash())
            assert [d.reason for d in rt.dead_letters.list(actor="sup/w")] == ["handler_failed"]
            assert ("restart", "sup/w") not in log, "the restart waits for the supervisor"
            release.set()
        await wait_until(lambda: ("restart", "sup/w") in log)
        assert (await statuses(sup))["w"] == "running"


async def test_a_retried_message_is_queued_at_once_and_handled_after_the_restart() -> None:
    log, release, entered = Log(), anyio.Event(), anyio.Event()
    retry = gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=0.0, jitter=0.0))
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("w", log, actor=FlakyOnce, retry=retry)))
        cell = rt._system.cells["sup/w"]
        answers: list[int] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.start_child, gr.ChildSpec(actor=_slow_start(release, entered)))
            with anyio.fail_after(3):
                await entered.wait()

            async def ask() -> None:
                answers.append(await rt.ref("sup/w").ask(Flake(), timeout=5.0))

            tg.start_soon(ask)
            await wait_until(lambda: len(cell.mailbox) == 1)  # requeued by the cell
            assert answers == []
            release.set()
        assert answers == [2]


async def test_the_restart_waits_at_least_the_retry_backoff_the_cell_reports() -> None:
    log = Log()
    delay = 0.15
    retry = gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=delay, jitter=0.0))
    async with gr.Runtime() as rt:
        await rt.spawn(supervisor("sup", child("w", log, actor=FlakyOnce, retry=retry)))
        started = time.monotonic()
        assert await rt.ref("sup/w").ask(Flake(), timeout=5.0) == 2
        assert log.at("restart", "sup/w") - started >= delay - 0.01


async def test_a_failure_reported_to_a_supervisor_that_stops_keeps_its_error() -> None:
    # The supervisor stops before it handles the report (it was busy, then
    # the stop dropped its queue): the cell had dead-lettered the message
    # with the handler's own error, and nothing is restarted.
    log, release, entered = Log(), anyio.Event(), anyio.Event()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("w", log, retry=ONE_ATTEMPT)))
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        sup_cell = rt._system.cells["sup"]
        outcome: list[BaseException] = []

        async def start_slow() -> None:
            try:
                await sup.start_child(gr.ChildSpec(actor=_slow_start(release, entered)))
            except gr.GreenroomError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(start_slow)
            with anyio.fail_after(3):
                await entered.wait()
            await rt.ref("sup/w").tell(Crash())
            await wait_until(lambda: bool(sup_cell.sys))  # the report waits in its queue
            tg.start_soon(root.terminate_child, "sup")
            await wait_until(lambda: sup_cell.state.value == "stopping")
            release.set()
        assert sup_cell.state.value == "stopped"
        assert outcome == [], "the call that held the supervisor ran to its end"
        [letter] = rt.dead_letters.list(actor="sup/w")
        assert letter.reason == "handler_failed"
        assert letter.error.type == "tests.actors._support.Boom"
        assert ("restart", "sup/w") not in log
