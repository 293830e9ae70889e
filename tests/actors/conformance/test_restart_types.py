"""Restart types as OTP's ``supervisor`` applies them.

Modelled on ``supervisor_SUITE``'s ``permanent_normal``, ``transient_normal``,
``temporary_normal``, the ``*_abnormal`` cases, ``temporary_bystander`` and
``sup_start_ignore_temporary_child``: ``permanent`` is always restarted,
``transient`` only after an abnormal exit, ``temporary`` never, and a
temporary child is gone from ``which_children`` and ``count_children`` once it
exits, for whatever reason.
"""

from __future__ import annotations

import anyio
import pytest

import greenroom as gr
from tests.actors._support import (
    Crash,
    Exit,
    Ignored,
    Log,
    Ping,
    Recorder,
    child,
    statuses,
    supervisor,
)

pytestmark = pytest.mark.anyio


class Slow(gr.Message):
    """Makes :class:`TimesOut` run past its ``handler_timeout``."""


class TimesOut(Recorder):
    @gr.handler
    async def slow(self, msg: Slow) -> None:
        await anyio.sleep_forever()


async def _exit(rt: gr.Runtime, name: str, how: str) -> None:
    ref = rt.ref(name)
    if how == "normal":
        await ref.ask(Exit())
    elif how == "failure":
        with pytest.raises(gr.HandlerError):
            await ref.ask(Crash())
    else:  # a handler past its deadline is a failure too
        with pytest.raises(gr.HandlerError):
            await ref.ask(Slow())


@pytest.mark.parametrize("how", ["normal", "failure", "handler_timeout"])
async def test_a_permanent_child_is_always_restarted(how: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        spec = child("w", log, actor=TimesOut, handler_timeout=0.05)
        sup = await rt.spawn(supervisor("sup", spec))
        log.clear()
        await _exit(rt, "sup/w", how)
        assert await statuses(sup) == {"w": "running"}
        assert log.of("restart") == [("restart", "sup/w")]
        assert await sup.count_children() == gr.ChildCounts(
            specs=1, active=1, supervisors=0, workers=1
        )


async def test_a_transient_child_that_exits_normally_is_kept_but_not_restarted() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("w", log, restart="transient")))
        log.clear()
        await _exit(rt, "sup/w", "normal")
        assert await statuses(sup) == {"w": "stopped"}
        assert await sup.count_children() == gr.ChildCounts(
            specs=1, active=0, supervisors=0, workers=1
        )
        assert log.of("start", "restart") == []
        # OTP transient_shutdown: restart_child starts it again
        ref = await sup.restart_child("w")
        assert await ref.ask(Ping()) == "sup/w"


@pytest.mark.parametrize("how", ["failure", "handler_timeout"])
async def test_a_transient_child_that_fails_is_restarted(how: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        spec = child("w", log, actor=TimesOut, restart="transient", handler_timeout=0.05)
        sup = await rt.spawn(supervisor("sup", spec))
        log.clear()
        await _exit(rt, "sup/w", how)
        assert await statuses(sup) == {"w": "running"}
        assert log.of("restart") == [("restart", "sup/w")]


@pytest.mark.parametrize("how", ["normal", "failure", "handler_timeout"])
async def test_a_temporary_child_is_never_restarted_and_is_forgotten(how: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        spec = child("t", log, actor=TimesOut, restart="temporary", handler_timeout=0.05)
        sup = await rt.spawn(supervisor("sup", child("a", log), spec))
        log.clear()
        await _exit(rt, "sup/t", how)
        assert await statuses(sup) == {"a": "running"}
        assert await sup.count_children() == gr.ChildCounts(
            specs=1, active=1, supervisors=0, workers=1
        )
        assert log.of("start", "restart") == []
        with pytest.raises(gr.ChildNotFound):
            await sup.restart_child("t")
        # its id is free: a new one may start under it
        await sup.start_child(child("t", log, restart="temporary"))
        assert await statuses(sup) == {"a": "running", "t": "running"}


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_temporary_bystander_of_a_group_restart_is_stopped_and_forgotten(
    strategy: str,
) -> None:
    # OTP temporary_bystander: "never restarted (even when ... a sibling's
    # death causes the temporary process to be terminated)".
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor(
                "sup",
                child("a", log),
                child("t", log, restart="temporary"),
                child("c", log),
                strategy=strategy,
            )
        )
        log.clear()
        await _exit(rt, "sup/a", "failure")
        assert await statuses(sup) == {"a": "running", "c": "running"}
        # The group stops in reverse start order, the temporary one with it;
        # only the others start again.
        assert log.of("start", "restart", "stop") == [
            ("stop", "sup/c"),
            ("stop", "sup/t"),
            ("stop", "sup/a"),
            ("restart", "sup/a"),
            ("restart", "sup/c"),
        ]


async def test_a_temporary_child_that_ignores_its_start_is_not_kept() -> None:
    # OTP sup_start_ignore_temporary_child(_start_child): the spec is not saved.
    log = Log()
    async with gr.Runtime() as rt:
        spec = child("skip", log, actor=Ignored, restart="temporary")
        sup = await rt.spawn(supervisor("sup", child("a", log), spec))
        assert await statuses(sup) == {"a": "running"}
        started = await sup.start_child(child("again", log, actor=Ignored, restart="temporary"))
        assert started.id == "again"
        with pytest.raises(gr.ActorStopped):
            await started.ref.ask(Ping(), timeout=1.0)
        assert await statuses(sup) == {"a": "running"}
        assert await sup.count_children() == gr.ChildCounts(
            specs=1, active=1, supervisors=0, workers=1
        )


async def test_a_permanent_child_that_ignores_its_start_is_kept_as_not_running() -> None:
    # OTP sup_start_ignore_child: [2,1,0,2] -- two specs, one active.
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup"))
        await sup.start_child(child("skip", log, actor=Ignored))
        await sup.start_child(child("b", log))
        assert await statuses(sup) == {"skip": "ignored", "b": "running"}
        assert await sup.count_children() == gr.ChildCounts(
            specs=2, active=1, supervisors=0, workers=2
        )


async def test_a_terminated_temporary_child_is_forgotten() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("t", log, restart="temporary")))
        await sup.terminate_child("t")
        assert await statuses(sup) == {}
        with pytest.raises(gr.ChildNotFound):
            await sup.get_childspec("t")
