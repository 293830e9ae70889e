"""OTP restart rules: restart types under each strategy, intensity, escalation, backoff, start.

Each test records the lifecycle of every child into a log it owns and asserts
exactly which children were stopped and restarted, in which order and how often.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
import pytest

import greenroom as gr
from tests.actors._support import (
    NO_BACKOFF,
    ONE_ATTEMPT,
    Boom,
    Crash,
    Exit,
    FailsToStart,
    Ignored,
    Log,
    Ping,
    Recorder,
    child,
    statuses,
    supervisor,
    wait_until,
)

pytestmark = pytest.mark.anyio

LIFECYCLE = ("start", "restart", "stop")
GROUPS = {"one_for_one": ["b"], "one_for_all": ["a", "b", "c"], "rest_for_one": ["b", "c"]}


def restarted_with(group: list[str]) -> list[tuple[str, str]]:
    """A group restart: stopped in reverse start order, then restarted in start order."""
    return [("stop", f"sup/{c}") for c in reversed(group)] + [
        ("restart", f"sup/{c}") for c in group
    ]


async def start_abc(
    rt: gr.Runtime, log: Log, strategy: str, restart: str = "permanent", **options: object
) -> gr.SupervisorRef:
    """``sup`` with permanent ``a`` and ``c`` around ``b`` of the given restart type."""
    spec = supervisor(
        "sup",
        child("a", log),
        child("b", log, restart=restart),  # type: ignore[arg-type]
        child("c", log),
        strategy=strategy,
        **options,
    )
    sup: gr.SupervisorRef = await rt.spawn(spec)
    assert log == [("start", "sup/a"), ("start", "sup/b"), ("start", "sup/c")]
    log.clear()
    return sup


# -- every restart type under every strategy -----------------------------------


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
@pytest.mark.parametrize("restart", ["permanent", "transient", "temporary"])
@pytest.mark.parametrize("how", ["failure", "normal_exit"])
async def test_restart_type_and_strategy_decide_which_children_restart_in_order(
    strategy: str, restart: str, how: str
) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_abc(rt, log, strategy, restart)
        b = rt.ref("sup/b")
        if how == "failure":
            with pytest.raises(gr.HandlerError):
                await b.ask(Crash())
        else:
            await b.ask(Exit())
        # A supervisor call runs after the failure or exit it was told about.
        children = await statuses(sup)

        restarts = restart == "permanent" or (restart == "transient" and how == "failure")
        if restarts:
            assert log.of(*LIFECYCLE) == restarted_with(GROUPS[strategy])
            assert children == {"a": "running", "b": "running", "c": "running"}
            assert await b.ask(Ping()) == "sup/b"
        else:
            # Not restarted, and no sibling is touched.
            assert log.of(*LIFECYCLE) == [("stop", "sup/b")]
            if restart == "transient":
                assert children == {"a": "running", "b": "stopped", "c": "running"}
            else:  # a temporary child is forgotten
                assert children == {"a": "running", "c": "running"}
        for sibling in ("sup/a", "sup/c"):
            assert await rt.ref(sibling).ask(Ping()) == sibling
    # On exit, whatever runs stops in reverse start order, once.
    stops = [e for e in log.of(*LIFECYCLE) if e[0] == "stop"]
    running_at_exit = [n for n in ("c", "b", "a") if n != "b" or restarts]
    assert stops[-len(running_at_exit) :] == [("stop", f"sup/{n}") for n in running_at_exit]


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_each_failure_is_one_restart_of_its_group(strategy: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_abc(rt, log, strategy)
        for _ in range(3):
            with pytest.raises(gr.HandlerError):
                await rt.ref("sup/b").ask(Crash())
        await sup.which_children()
        assert log.of(*LIFECYCLE) == restarted_with(GROUPS[strategy]) * 3


async def test_restarted_child_handles_the_messages_queued_behind_the_failure() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await start_abc(rt, log, "one_for_one")
        b = rt.ref("sup/b")
        await b.tell(Crash())
        answer = await b.ask(Ping())
        assert answer == "sup/b"
        assert log.of("crash", *LIFECYCLE) == [
            ("crash", "sup/b"),
            ("stop", "sup/b"),
            ("restart", "sup/b"),
        ]


class Hold(gr.Message):
    """Makes a :class:`FailsWhenReleased` wait for its gate, then raise."""


class OpensGateAndCrashes(Recorder):
    """On :class:`Crash`, releases the gate, then fails."""

    def __init__(self, log: Log, gate: anyio.Event) -> None:
        super().__init__(log)
        self.gate = gate

    @gr.handler
    async def crash(self, msg: Crash) -> None:
        self.gate.set()
        await super().crash(msg)


class FailsWhenReleased(Recorder):
    """On :class:`Hold`, waits for the gate, then fails."""

    def __init__(self, log: Log, gate: anyio.Event, holding: anyio.Event) -> None:
        super().__init__(log)
        self.gate = gate
        self.holding = holding

    @gr.handler
    async def hold(self, msg: Hold) -> None:
        self.holding.set()
        await self.gate.wait()
        await self.crash(Crash())


async def test_failure_of_an_instance_a_group_restart_replaced_is_not_restarted_again() -> None:
    # b and c fail at (nearly) the same time; b's failure reaches the supervisor
    # first. OTP stops c (already dead) and restarts b and c once; the exit of
    # c's old process is then ignored, as it is no longer a child.
    log = Log()
    gate, holding = anyio.Event(), anyio.Event()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor(
                "sup",
                child("a", log),
                gr.ChildSpec(
                    actor=OpensGateAndCrashes, id="b", args=(log, gate), retry=ONE_ATTEMPT
                ),
                gr.ChildSpec(
                    actor=FailsWhenReleased, id="c", args=(log, gate, holding), retry=ONE_ATTEMPT
                ),
                strategy="rest_for_one",
            )
        )
        log.clear()
        await rt.ref("sup/c").tell(Hold())
        with anyio.fail_after(3):
            await holding.wait()
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        await wait_until(lambda: ("crash", "sup/c") in log)
        await wait_until(lambda: len(rt.dead_letters.list(actor="sup/c")) == 1)
        await sup.which_children()
        assert log.of("crash", *LIFECYCLE) == [
            ("crash", "sup/b"),
            ("crash", "sup/c"),
            ("stop", "sup/c"),
            ("stop", "sup/b"),
            ("restart", "sup/b"),
            ("restart", "sup/c"),
        ]
        assert await statuses(sup) == {"a": "running", "b": "running", "c": "running"}


class FailsToRestart(Recorder):
    """Starts once; every restart raises."""

    async def on_restart(self, error: gr.ErrorInfo) -> None:
        self.log.record("restart_failed", self.ctx.name)
        raise Boom("cannot restart")


async def test_child_failing_to_restart_is_retried_until_the_intensity_escalates() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        outer = await rt.spawn(
            supervisor(
                "outer",
                supervisor(
                    "sup",
                    child("a", log),
                    child("b", log, actor=FailsToRestart),
                    max_restarts=3,
                    within=60.0,
                ),
            )
        )
        log.clear()
        with pytest.raises(gr.HandlerError):
            await rt.ref("outer/sup/b").ask(Crash())
        await wait_until(lambda: ("start", "outer/sup/b") in log)
        await outer.which_children()
        assert log.of("restart_failed", *LIFECYCLE) == [
            ("stop", "outer/sup/b"),
            # three restarts are allowed, each fails (on_stop is skipped for an
            # instance that did not start)
            *[("restart_failed", "outer/sup/b")] * 3,
            # the fourth is one too many
            ("stop", "outer/sup/a"),
            ("start", "outer/sup/a"),
            ("start", "outer/sup/b"),
        ]


# -- restart intensity and escalation --------------------------------------------


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_max_restarts_within_the_window_are_allowed(strategy: str) -> None:
    # A group restart counts once, however many children it restarts.
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_abc(rt, log, strategy, max_restarts=3, within=60.0)
        for _ in range(3):
            with pytest.raises(gr.HandlerError):
                await rt.ref("sup/b").ask(Crash())
        assert await statuses(sup) == {"a": "running", "b": "running", "c": "running"}
        assert log.of(*LIFECYCLE) == restarted_with(GROUPS[strategy]) * 3


@pytest.mark.parametrize("strategy", ["one_for_one", "one_for_all", "rest_for_one"])
async def test_restarts_after_normal_exits_count_toward_the_intensity(strategy: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        await start_abc(rt, log, strategy, max_restarts=1, within=60.0)
        b = rt.ref("sup/b")
        await b.ask(Exit())  # a permanent child's normal exit is a restart
        await b.ask(Exit())  # one too many: sup escalates, root restarts it
        await wait_until(lambda: len(log.of("start")) == 3)
        assert await statuses(root) == {"sup": "running"}
        assert log.of(*LIFECYCLE) == [
            *restarted_with(GROUPS[strategy]),
            ("stop", "sup/c"),
            ("stop", "sup/b"),
            ("stop", "sup/a"),
            ("start", "sup/a"),
            ("start", "sup/b"),
            ("start", "sup/c"),
        ]


async def test_one_restart_past_the_intensity_stops_children_in_reverse_and_escalates() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        outer = await rt.spawn(
            supervisor(
                "outer",
                supervisor(
                    "sup",
                    child("a", log),
                    child("b", log),
                    child("c", log),
                    max_restarts=2,
                    within=60.0,
                ),
                max_restarts=5,
            )
        )
        log.clear()
        old_ref = rt.ref("outer/sup/b")
        for _ in range(3):
            with pytest.raises(gr.HandlerError):
                await old_ref.ask(Crash())
        await wait_until(lambda: len(log.of(*LIFECYCLE)) == 4 + 3 + 3)
        await outer.which_children()
        assert log.of(*LIFECYCLE) == [
            # two restarts are within the intensity
            ("stop", "outer/sup/b"),
            ("restart", "outer/sup/b"),
            ("stop", "outer/sup/b"),
            ("restart", "outer/sup/b"),
            # the third is one too many: every child stops, in reverse start order
            ("stop", "outer/sup/c"),
            ("stop", "outer/sup/b"),
            ("stop", "outer/sup/a"),
            # the parent restarts the supervisor, which starts fresh children in order
            ("start", "outer/sup/a"),
            ("start", "outer/sup/b"),
            ("start", "outer/sup/c"),
        ]
        assert await statuses(outer) == {"sup": "running"}
        sup = rt.ref("outer/sup")
        assert isinstance(sup, gr.SupervisorRef)
        assert await statuses(sup) == {"a": "running", "b": "running", "c": "running"}
        assert await rt.ref("outer/sup/b").ask(Ping()) == "outer/sup/b"
        assert await old_ref.ask(Ping()) == "outer/sup/b", "an old ref finds the new incarnation"


async def test_escalation_counts_as_a_failure_of_the_parent_child() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        outer = await rt.spawn(
            supervisor(
                "outer",
                child("x", log),
                supervisor("sup", child("a", log), max_restarts=0),
                child("y", log),
                strategy="rest_for_one",
                max_restarts=5,
            )
        )
        log.clear()
        with pytest.raises(gr.HandlerError):
            await rt.ref("outer/sup/a").ask(Crash())
        await wait_until(lambda: ("start", "outer/sup/a") in log)
        await outer.which_children()
        # sup gave up at once (max_restarts=0); rest_for_one in the parent then
        # stops y and sup (sup's children are already stopped) and restarts
        # sup (fresh children) then y.
        assert log.of(*LIFECYCLE) == [
            ("stop", "outer/sup/a"),
            ("stop", "outer/y"),
            ("start", "outer/sup/a"),
            ("restart", "outer/y"),
        ]


async def test_restarts_older_than_the_window_do_not_count() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_abc(rt, log, "one_for_one", max_restarts=1, within=0.05)
        b = rt.ref("sup/b")
        with pytest.raises(gr.HandlerError):
            await b.ask(Crash())
        # Wait out the window on the monotonic clock, not with a sleep.
        t0 = log.at("restart", "sup/b")
        await wait_until(lambda: time.monotonic() - t0 > 0.06)
        with pytest.raises(gr.HandlerError):
            await b.ask(Crash())
        assert await statuses(sup) == {"a": "running", "b": "running", "c": "running"}
        assert log.of(*LIFECYCLE) == restarted_with(["b"]) * 2


async def until_the_root_gives_up(
    config: gr.RuntimeConfig,
    body: Callable[[gr.Runtime], Awaitable[None]],
    after: Callable[[gr.Runtime], Awaitable[None]] | None = None,
) -> gr.Escalated:
    """Run ``body`` in a runtime, wait until its root gives up, run ``after``, and
    return the :class:`Escalated` that leaving the runtime raises."""
    try:
        async with gr.Runtime(config) as rt:
            await body(rt)
            with anyio.fail_after(3):
                await rt.wait_stopped()
            assert isinstance(rt.failure, gr.Escalated)
            if after is not None:
                await after(rt)
    except gr.Escalated as exc:
        return exc
    pytest.fail("the runtime exited without raising Escalated")


async def test_root_escalation_stops_the_runtime_and_is_raised_on_exit() -> None:
    log = Log()

    async def body(rt: gr.Runtime) -> None:
        for cid in ("a", "b", "c"):
            await rt.spawn(child(cid, log))
        log.clear()
        for _ in range(2):
            with pytest.raises(gr.HandlerError):
                await rt.ref("b").ask(Crash())

    escalated = await until_the_root_gives_up(gr.RuntimeConfig(root_max_restarts=1), body)
    assert escalated.supervisor == "root"
    assert escalated.restarts == 2
    assert escalated.last_error_type == "tests.actors._support.Boom"
    assert log.of(*LIFECYCLE) == [
        ("stop", "b"),
        ("restart", "b"),
        ("stop", "c"),
        ("stop", "b"),
        ("stop", "a"),
    ]


async def test_spawn_after_the_root_gave_up_raises_actor_stopped() -> None:
    log = Log()

    async def body(rt: gr.Runtime) -> None:
        await rt.spawn(child("a", log))
        with pytest.raises(gr.HandlerError):
            await rt.ref("a").ask(Crash())

    async def after(rt: gr.Runtime) -> None:
        with pytest.raises(gr.ActorStopped):
            await rt.spawn(child("late", log))

    await until_the_root_gives_up(gr.RuntimeConfig(root_max_restarts=0), body, after)
    assert ("start", "late") not in log


async def test_escalation_climbs_the_tree_to_the_root_and_stops_everything_in_reverse() -> None:
    log = Log()

    async def body(rt: gr.Runtime) -> None:
        await rt.spawn(child("first", log))
        await rt.spawn(
            supervisor(
                "outer",
                child("x", log),
                supervisor("inner", child("a", log), child("b", log), max_restarts=0),
                max_restarts=0,
            )
        )
        log.clear()
        with pytest.raises(gr.HandlerError):
            await rt.ref("outer/inner/b").ask(Crash())

    escalated = await until_the_root_gives_up(gr.RuntimeConfig(root_max_restarts=0), body)
    # inner gives up, then outer, then the root: each escalation is the next one's cause
    assert escalated.supervisor == "root"
    assert escalated.last_error_type == "greenroom.Escalated"
    assert "outer" in escalated.last_error_message
    assert log.of(*LIFECYCLE) == [
        ("stop", "outer/inner/b"),
        ("stop", "outer/inner/a"),
        ("stop", "outer/x"),
        ("stop", "first"),
    ]


# -- restart backoff ---------------------------------------------------------------


def test_backoff_delay_grows_by_the_multiplier_up_to_the_maximum() -> None:
    backoff = gr.Backoff(initial=0.1, multiplier=3.0, maximum=1.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 6)] == pytest.approx([0.1, 0.3, 0.9, 1.0, 1.0])


@pytest.mark.parametrize(("n", "base"), [(1, 1.0), (2, 2.0), (3, 4.0), (8, 5.0)])
def test_backoff_jitter_stays_within_its_bounds(n: int, base: float) -> None:
    backoff = gr.Backoff(initial=1.0, multiplier=2.0, maximum=5.0, jitter=0.25)
    delays = [backoff.delay(n) for _ in range(500)]
    assert all(base * 0.75 <= d <= base * 1.25 for d in delays)
    assert len(set(delays)) > 1, "jitter spreads the delays"


def test_backoff_without_jitter_is_exact() -> None:
    assert NO_BACKOFF.delay(1) == 0.0
    assert gr.Backoff(initial=0.5, jitter=0.0).delay(1) == 0.5


# asyncio may fire a timer up to its clock resolution early; allow a millisecond.
EARLY = 1e-3


async def test_restart_waits_at_least_the_backoff_delay_and_grows() -> None:
    log = Log()
    backoff = gr.Backoff(initial=0.1, multiplier=2.0, maximum=1.0, jitter=0.0)
    async with gr.Runtime() as rt:
        await start_abc(rt, log, "one_for_one", backoff=backoff)
        b = rt.ref("sup/b")
        for nth in range(2):
            with pytest.raises(gr.HandlerError):
                await b.ask(Crash())
            await wait_until(lambda nth=nth: log.of("restart").count(("restart", "sup/b")) > nth)
        first = log.at("restart", "sup/b", 0) - log.at("crash", "sup/b", 0)
        second = log.at("restart", "sup/b", 1) - log.at("crash", "sup/b", 1)
        assert first >= 0.1 - EARLY
        assert second >= 0.2 - EARLY
        assert log.of(*LIFECYCLE) == restarted_with(["b"]) * 2


async def test_restart_backoff_with_jitter_waits_at_least_its_lower_bound() -> None:
    log = Log()
    backoff = gr.Backoff(initial=0.2, maximum=1.0, jitter=0.5)
    async with gr.Runtime() as rt:
        await start_abc(rt, log, "one_for_all", backoff=backoff)
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        await wait_until(lambda: len(log.of("restart")) == 3)
        crashed = log.at("crash", "sup/b")
        for name in ("sup/a", "sup/b", "sup/c"):
            assert log.at("restart", name) - crashed >= 0.1 - EARLY
        assert log.of(*LIFECYCLE) == restarted_with(["a", "b", "c"])


async def test_messages_sent_during_the_backoff_wait_for_the_restart() -> None:
    log = Log()
    backoff = gr.Backoff(initial=0.1, jitter=0.0)
    async with gr.Runtime() as rt:
        await start_abc(rt, log, "one_for_one", backoff=backoff)
        b = rt.ref("sup/b")
        await b.tell(Crash())
        assert await b.ask(Ping()) == "sup/b"
        assert log.of("crash", *LIFECYCLE) == [
            ("crash", "sup/b"),
            ("stop", "sup/b"),
            ("restart", "sup/b"),
        ]
        assert log.at("restart", "sup/b") - log.at("crash", "sup/b") >= 0.1 - EARLY


# -- start order, rollback and IGNORE ------------------------------------------------


async def test_children_start_in_spec_order() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", *(child(c, log) for c in "abcde")))
        assert log == [("start", f"sup/{c}") for c in "abcde"]
        assert list(await statuses(sup)) == list("abcde")


async def test_failed_start_rolls_back_started_children_in_reverse_order() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        spec = supervisor(
            "sup",
            child("a", log),
            child("b", log),
            child("bad", log, actor=FailsToStart),
            child("d", log),
        )
        with pytest.raises(gr.ChildStartFailed) as raised:
            await rt.spawn(spec)
        assert log == [
            ("start", "sup/a"),
            ("start", "sup/b"),
            ("start_failed", "sup/bad"),
            ("stop", "sup/b"),
            ("stop", "sup/a"),
        ]
        cause = raised.value
        while isinstance(cause.__cause__, gr.ChildStartFailed):
            cause = cause.__cause__
        assert cause.child == "sup/bad"
        assert cause.error_type == "tests.actors._support.Boom"
        with pytest.raises(gr.ActorStopped):
            rt.ref("sup/a")
        assert "sup" not in await statuses(rt.ref("root"))  # type: ignore[arg-type]


async def test_nested_failed_start_rolls_back_the_whole_subtree() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        spec = supervisor(
            "sup",
            child("a", log),
            supervisor("inner", child("x", log), child("y", log)),
            child("bad", log, actor=FailsToStart),
        )
        with pytest.raises(gr.ChildStartFailed):
            await rt.spawn(spec)
        assert log == [
            ("start", "sup/a"),
            ("start", "sup/inner/x"),
            ("start", "sup/inner/y"),
            ("start_failed", "sup/bad"),
            ("stop", "sup/inner/y"),
            ("stop", "sup/inner/x"),
            ("stop", "sup/a"),
        ]


async def test_ignore_from_on_start_leaves_the_child_ignored_and_starts_the_next() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor("sup", child("a", log), child("skip", log, actor=Ignored), child("c", log))
        )
        assert log == [("start", "sup/a"), ("ignore", "sup/skip"), ("start", "sup/c")]
        assert await statuses(sup) == {"a": "running", "skip": "ignored", "c": "running"}
        with pytest.raises(gr.ActorStopped):
            rt.ref("sup/skip")
        log.clear()
    # An ignored child is never stopped: it never ran.
    assert log == [("stop", "sup/c"), ("stop", "sup/a")]


async def test_one_for_all_tries_an_ignored_child_again_in_its_place() -> None:
    # OTP: an ignored child keeps its spec with no pid, and a group restart
    # calls its start function again (here it returns IGNORE again).
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor(
                "sup",
                child("a", log),
                child("skip", log, actor=Ignored),
                child("c", log),
                strategy="one_for_all",
            )
        )
        log.clear()
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/c").ask(Crash())
        assert await statuses(sup) == {"a": "running", "skip": "ignored", "c": "running"}
        assert log == [
            ("crash", "sup/c"),
            ("stop", "sup/c"),
            ("stop", "sup/a"),
            ("restart", "sup/a"),
            ("ignore", "sup/skip"),
            ("restart", "sup/c"),
        ]
