"""Escalation and auto-shutdown, as OTP's ``supervisor`` handles them.

Modelled on ``supervisor_SUITE``'s ``*_escalation`` cases and the
auto-shutdown (significant children) cases: a supervisor past its intensity
stops its children and exits with reason ``shutdown``; its parent restarts
it only if it is permanent. A significant child's exit shuts its supervisor
down per ``auto_shutdown``; a non-significant child never does.
"""

from __future__ import annotations

import contextlib

import pytest

import greenroom as gr
from tests.actors._support import (
    Crash,
    Exit,
    Log,
    Ping,
    child,
    root_statuses,
    spawn_auto,
    statuses,
    supervisor,
    wait_until,
)

pytestmark = pytest.mark.anyio


async def _give_up(rt: gr.Runtime, name: str) -> None:
    """Crash ``name`` under a supervisor with ``max_restarts=0``: it gives up at once."""
    with pytest.raises(gr.HandlerError):
        await rt.ref(name).ask(Crash())


@pytest.mark.parametrize(
    ("restart", "after"),
    [("permanent", {"inner": "running"}), ("transient", {"inner": "stopped"}), ("temporary", {})],
)
async def test_a_supervisor_that_gives_up_is_restarted_only_if_permanent(
    restart: str, after: dict[str, str]
) -> None:
    # OTP: past its intensity a supervisor exits with reason `shutdown`; a
    # transient child is not restarted after `shutdown`, a temporary one never.
    log = Log()
    async with gr.Runtime() as rt:
        inner = supervisor("inner", child("a", log), max_restarts=0, restart=restart)
        outer = await rt.spawn(supervisor("outer", child("x", log), inner, max_restarts=5))
        log.clear()
        await _give_up(rt, "outer/inner/a")
        if restart == "permanent":
            await wait_until(lambda: ("start", "outer/inner/a") in log)
        children = await statuses(outer)
        assert children == {"x": "running", **after}
        assert log.of("stop")[:1] == [("stop", "outer/inner/a")]
        assert ("stop", "outer/x") not in log, "one_for_one: the sibling is untouched"
        if restart == "transient":
            # kept, so restart_child brings it back with fresh children
            await outer.restart_child("inner")
            assert await rt.ref("outer/inner/a").ask(Ping()) == "outer/inner/a"


async def test_a_transient_supervisor_that_gives_up_does_not_use_its_parents_intensity() -> None:
    # Were the escalation an abnormal exit, the parent (max_restarts=0) would
    # have to restart it and would itself give up: the runtime would stop.
    log = Log()
    async with gr.Runtime() as rt:
        inner = supervisor("inner", child("a", log), max_restarts=0, restart="transient")
        outer = await rt.spawn(supervisor("outer", inner, max_restarts=0))
        await _give_up(rt, "outer/inner/a")
        assert await statuses(outer) == {"inner": "stopped"}
        assert rt.failure is None


async def test_a_significant_supervisor_that_gives_up_shuts_its_parent_down() -> None:
    # OTP: a transient significant child exiting with `shutdown` is an exit
    # auto_shutdown reacts to.
    log = Log()
    async with gr.Runtime() as rt:
        inner = supervisor(
            "inner", child("a", log), max_restarts=0, restart="transient", significant=True
        )
        await rt.spawn(
            supervisor(
                "outer",
                child("x", log),
                inner,
                auto_shutdown="any_significant",
                restart="transient",
            )
        )
        log.clear()
        await _give_up(rt, "outer/inner/a")
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        await wait_until(lambda: ("stop", "outer/x") in log)
        assert await statuses(root) == {"outer": "stopped"}


async def test_a_permanent_escalation_counts_toward_the_parents_intensity() -> None:
    log = Log()
    async with gr.Runtime(gr.RuntimeConfig(root_max_restarts=5)) as rt:
        inner = supervisor("inner", child("a", log), max_restarts=0)
        outer = await rt.spawn(supervisor("outer", inner, max_restarts=1))
        await _give_up(rt, "outer/inner/a")
        await wait_until(lambda: log.of("start").count(("start", "outer/inner/a")) == 2)
        assert await statuses(outer) == {"inner": "running"}
        await _give_up(rt, "outer/inner/a")  # the second restart passes outer's intensity
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        await wait_until(lambda: log.of("start").count(("start", "outer/inner/a")) == 3)
        # outer gave up too; the root (permanent child) restarted it
        assert await statuses(root) == {"outer": "running"}


@pytest.mark.parametrize("mode", ["any_significant", "all_significant"])
@pytest.mark.parametrize("how", ["exit", "failure"])
async def test_a_non_significant_exit_never_shuts_the_supervisor_down(mode: str, how: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await spawn_auto(
            rt,
            log,
            mode,
            child("t", log, restart="temporary"),
            child("w", log, restart="transient", significant=True),
        )
        message = Exit() if how == "exit" else Crash()
        with contextlib.suppress(gr.HandlerError):  # a failure, or a normal exit
            await rt.ref("sup/t").ask(message)
        assert await statuses(sup) == {"w": "running"}
        assert await root_statuses(rt) == {"sup": "running"}


async def test_a_group_restart_stopping_a_temporary_significant_child_is_no_shutdown() -> None:
    # OTP terminate_children removes temporary children without do_auto_shutdown.
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor(
                "sup",
                child("a", log),
                child("t", log, restart="temporary", significant=True),
                strategy="one_for_all",
                auto_shutdown="any_significant",
                restart="transient",
            )
        )
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/a").ask(Crash())
        assert await statuses(sup) == {"a": "running"}
        assert await root_statuses(rt) == {"sup": "running"}


async def test_all_significant_shuts_down_after_the_last_significant_exit() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await spawn_auto(
            rt,
            log,
            "all_significant",
            child("w1", log, restart="transient", significant=True),
            child("w2", log, restart="temporary", significant=True),
            child("other", log),
        )
        await rt.ref("sup/w1").ask(Exit())
        assert await statuses(sup) == {"w1": "stopped", "w2": "running", "other": "running"}
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/w2").ask(Crash())  # a temporary one's failure counts too
        await wait_until(lambda: ("stop", "sup/other") in log)
        assert await root_statuses(rt) == {"sup": "stopped"}
