"""Supervision of messages and shutdown: retry policy, dead letters, handler deadlines,
and children stopping in reverse start order within their shutdown time.

Restart strategies, intensity and start order are in ``test_supervision_strategies``;
child management and auto shutdown in ``test_supervision_management``; pools in
``test_pools``.
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
    Exit,
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


class Work(gr.Message):
    """A unit of work for :class:`Flaky`, which fails it ``fail_times`` times."""

    n: int
    fail_times: int = 0
    error: str = "Boom"


class Hang(gr.Message):
    """Makes :class:`Sleeper` wait forever (until cancelled)."""


class Other(Exception):
    """A failure a retry policy can exclude."""


ERRORS: dict[str, type[Exception]] = {"Boom": Boom, "Other": Other}


class Flaky(Recorder):
    """Records each attempt at a :class:`Work` and fails the first ``fail_times``."""

    @gr.handler
    async def work(self, msg: Work) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        self.log.record(f"work {msg.n} attempt {envelope.attempt}", self.ctx.name)
        if envelope.attempt <= msg.fail_times:
            raise ERRORS[msg.error](f"work {msg.n} failed on attempt {envelope.attempt}")
        return envelope.attempt


class Sleeper(Recorder):
    """Hangs on :class:`Hang` until cancelled, recording that the cancellation reached it."""

    def __init__(self, log: Log, entered: anyio.Event | None = None) -> None:
        super().__init__(log)
        self.entered = entered

    @gr.handler
    async def hang(self, msg: Hang) -> None:
        envelope = self.ctx.envelope
        attempt = 0 if envelope is None else envelope.attempt
        self.log.record(f"hang attempt {attempt}", self.ctx.name)
        if self.entered is not None:
            self.entered.set()
        try:
            await anyio.sleep_forever()
        except BaseException:
            self.log.record("cancelled", self.ctx.name)
            raise


def flaky(log: Log, retry: gr.RetryPolicy, **options: object) -> gr.SupervisorSpec:
    return supervisor("sup", child("w", log, actor=Flaky, retry=retry, **options))


def retry(max_attempts: int, **options: object) -> gr.RetryPolicy:
    options.setdefault("backoff", NO_BACKOFF)
    return gr.RetryPolicy(max_attempts=max_attempts, **options)  # type: ignore[arg-type]


def attempts(log: Log) -> list[str]:
    return [event for event, _ in log if event.startswith("work")]


# -- message retry policy ------------------------------------------------------------


async def test_message_failing_twice_then_succeeding_is_handled_on_attempt_three() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(flaky(log, retry(3)))
        log.clear()
        assert await rt.ref("sup/w").ask(Work(n=1, fail_times=2)) == 3
        assert attempts(log) == ["work 1 attempt 1", "work 1 attempt 2", "work 1 attempt 3"]
        # each failure restarted the actor once
        assert log.of(*LIFECYCLE) == [("stop", "sup/w"), ("restart", "sup/w")] * 2
        assert rt.dead_letters.list(actor="sup/w") == []
        assert [c.failures for c in await sup.which_children()] == [2]


async def test_message_failing_past_max_attempts_is_a_dead_letter_and_the_ask_fails() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(flaky(log, retry(3)))
        log.clear()
        with pytest.raises(gr.HandlerError) as raised:
            await rt.ref("sup/w").ask(Work(n=7, fail_times=99))
        error = raised.value
        assert error.error_type == "tests.actors._support.Boom"
        assert error.error_message == "work 7 failed on attempt 3"
        assert error.attempts == 3
        assert isinstance(error.__cause__, Boom)
        assert attempts(log) == [f"work 7 attempt {n}" for n in (1, 2, 3)]
        letters = rt.dead_letters.list(actor="sup/w", reason="handler_failed")
        assert len(letters) == 1
        assert letters[0].envelope.body == Work(n=7, fail_times=99)
        assert letters[0].envelope.attempt == 3
        assert letters[0].error.type == "tests.actors._support.Boom"
        # the actor was restarted after every failure, the last one included,
        # and still serves
        assert log.of(*LIFECYCLE) == [("stop", "sup/w"), ("restart", "sup/w")] * 3
        assert await rt.ref("sup/w").ask(Work(n=8)) == 1


async def test_a_told_message_past_max_attempts_is_a_dead_letter_too() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(flaky(log, retry(2)))
        w = rt.ref("sup/w")
        await w.tell(Work(n=1, fail_times=99))
        assert await w.ask(Work(n=2)) == 1
        assert attempts(log) == ["work 1 attempt 1", "work 1 attempt 2", "work 2 attempt 1"]
        [letter] = rt.dead_letters.list(actor="sup/w")
        assert (letter.reason, letter.envelope.body) == ("handler_failed", Work(n=1, fail_times=99))


async def test_exception_not_in_retry_on_is_dead_lettered_at_once() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(flaky(log, retry(5, retry_on=(Boom,))))
        log.clear()
        with pytest.raises(gr.HandlerError) as raised:
            await rt.ref("sup/w").ask(Work(n=1, fail_times=99, error="Other"))
        assert raised.value.error_type == "tests.actors.test_supervision.Other"
        assert raised.value.attempts == 1
        assert attempts(log) == ["work 1 attempt 1"]
        assert len(rt.dead_letters.list(actor="sup/w", reason="handler_failed")) == 1
        # the actor is still restarted: the message policy and the restart are separate
        assert log.of(*LIFECYCLE) == [("stop", "sup/w"), ("restart", "sup/w")]
        # an exception in retry_on is retried
        assert await rt.ref("sup/w").ask(Work(n=2, fail_times=1)) == 2


async def test_retry_keeps_the_senders_order() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(flaky(log, retry(3)))
        w = rt.ref("sup/w")
        await w.tell(Work(n=1))
        await w.tell(Work(n=2, fail_times=2))
        for n in (3, 4, 5):
            await w.tell(Work(n=n))
        assert await w.ask(Work(n=6)) == 1
        assert attempts(log) == [
            "work 1 attempt 1",
            "work 2 attempt 1",
            "work 2 attempt 2",
            "work 2 attempt 3",
            "work 3 attempt 1",
            "work 4 attempt 1",
            "work 5 attempt 1",
            "work 6 attempt 1",
        ]


async def test_retry_waits_at_least_the_retry_backoff() -> None:
    log = Log()
    policy = gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=0.15, jitter=0.0))
    async with gr.Runtime() as rt:
        await rt.spawn(flaky(log, policy))
        assert await rt.ref("sup/w").ask(Work(n=1, fail_times=1)) == 2
        waited = log.at("work 1 attempt 2", "sup/w") - log.at("work 1 attempt 1", "sup/w")
        assert waited >= 0.15 - 1e-3


async def test_temporary_child_failure_dead_letters_the_message_without_retry() -> None:
    # A temporary child is not restarted, so nothing would handle a retry.
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor("sup", child("w", log, actor=Flaky, retry=retry(3), restart="temporary"))
        )
        with pytest.raises(gr.HandlerError) as raised:
            await rt.ref("sup/w").ask(Work(n=1, fail_times=99))
        assert raised.value.attempts == 1
        assert attempts(log) == ["work 1 attempt 1"]
        assert len(rt.dead_letters.list(actor="sup/w", reason="handler_failed")) == 1
        assert await statuses(sup) == {}


# -- per-message handler deadline ---------------------------------------------------


async def test_handler_past_its_deadline_is_cancelled_and_counts_as_a_failure() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor("sup", child("s", log, actor=Sleeper, handler_timeout=0.05, retry=retry(1)))
        )
        log.clear()
        started = time.monotonic()
        with pytest.raises(gr.HandlerError) as raised:
            await rt.ref("sup/s").ask(Hang())
        assert time.monotonic() - started >= 0.05 - 1e-3
        assert raised.value.error_type == "greenroom.HandlerTimeout"
        assert "0.05" in raised.value.error_message
        await sup.which_children()
        assert log == [
            ("hang attempt 1", "sup/s"),
            ("cancelled", "sup/s"),
            ("stop", "sup/s"),
            ("restart", "sup/s"),
        ]
        [letter] = rt.dead_letters.list(actor="sup/s", reason="handler_failed")
        assert letter.error.type == "greenroom.HandlerTimeout"
        assert [c.failures for c in await sup.which_children()] == [1]
        assert await rt.ref("sup/s").ask(Ping()) == "sup/s"


async def test_handler_timeout_is_retried_per_the_retry_policy() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(
            supervisor("sup", child("s", log, actor=Sleeper, handler_timeout=0.02, retry=retry(2)))
        )
        log.clear()
        with pytest.raises(gr.HandlerError) as raised:
            await rt.ref("sup/s").ask(Hang())
        assert raised.value.attempts == 2
        assert log.of("hang attempt 1", "hang attempt 2", "cancelled", *LIFECYCLE) == [
            ("hang attempt 1", "sup/s"),
            ("cancelled", "sup/s"),
            ("stop", "sup/s"),
            ("restart", "sup/s"),
            ("hang attempt 2", "sup/s"),
            ("cancelled", "sup/s"),
            ("stop", "sup/s"),
            ("restart", "sup/s"),
        ]


async def test_handler_within_its_deadline_is_not_cancelled() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(
            supervisor("sup", child("w", log, actor=Flaky, handler_timeout=5.0, retry=retry(1)))
        )
        assert await rt.ref("sup/w").ask(Work(n=1)) == 1
        assert rt.dead_letters.list() == []


# -- shutdown -------------------------------------------------------------------------


async def test_runtime_exit_stops_children_in_reverse_start_order_nested_trees_too() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(child("first", log))
        await rt.spawn(
            supervisor(
                "sup",
                child("a", log),
                supervisor("inner", child("x", log), child("y", log)),
                child("b", log),
            )
        )
        await rt.spawn(child("last", log))
        started = list(log)
        log.clear()
    assert started == [
        ("start", "first"),
        ("start", "sup/a"),
        ("start", "sup/inner/x"),
        ("start", "sup/inner/y"),
        ("start", "sup/b"),
        ("start", "last"),
    ]
    assert log == [("stop", name) for _, name in reversed(started)]


async def test_hanging_handler_is_cancelled_after_its_shutdown_time_and_runtime_exits() -> None:
    log = Log()
    entered = anyio.Event()
    outcome: list[BaseException] = []

    async def ask_and_keep(ref: gr.ActorRef) -> None:
        try:
            await ref.ask(Hang(), timeout=30.0)
        except gr.GreenroomError as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            async with gr.Runtime() as rt:
                await rt.spawn(child("before", log))
                ref = await rt.spawn(
                    gr.ChildSpec(actor=Sleeper, id="s", args=(log, entered), shutdown=0.1)
                )
                await rt.spawn(child("after", log))
                tg.start_soon(ask_and_keep, ref)
                await entered.wait()
                log.clear()
                started = time.monotonic()
            elapsed = time.monotonic() - started
    assert elapsed >= 0.1 - 1e-3
    assert log == [
        ("stop", "after"),
        ("cancelled", "s"),
        ("stop", "s"),
        ("stop", "before"),
    ]
    [error] = outcome
    assert isinstance(error, gr.ActorStopped)
    assert error.actor == "s"


async def test_asks_queued_behind_a_stopping_actor_fail_with_actor_stopped() -> None:
    log = Log()
    entered = anyio.Event()
    outcome: list[BaseException] = []

    async def ask_and_keep(ref: gr.ActorRef) -> None:
        try:
            await ref.ask(Ping(), timeout=30.0)
        except gr.GreenroomError as exc:
            outcome.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, gr.Runtime() as rt:
            ref = await rt.spawn(
                gr.ChildSpec(actor=Sleeper, id="s", args=(log, entered), shutdown=0.05)
            )
            await ref.tell(Hang())
            await entered.wait()
            for _ in range(3):
                tg.start_soon(ask_and_keep, ref)
            await wait_until(lambda: len(ref._cell.mailbox) == 3)
    assert len(outcome) == 3
    assert all(isinstance(e, gr.ActorStopped) for e in outcome)


async def test_stop_that_hangs_is_abandoned_after_the_shutdown_time() -> None:
    log = Log()

    class SlowStop(Recorder):
        async def on_stop(self) -> None:
            self.log.record("stop", self.ctx.name)
            await anyio.sleep_forever()

    with anyio.fail_after(10):
        async with gr.Runtime() as rt:
            await rt.spawn(child("a", log))
            await rt.spawn(child("slow", log, actor=SlowStop, shutdown=0.05))
            await rt.spawn(child("c", log))
            log.clear()
    assert log == [("stop", "c"), ("stop", "slow"), ("stop", "a")]


async def test_terminating_a_supervisor_stops_its_subtree_in_reverse_order() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await rt.spawn(
            supervisor(
                "sup",
                child("a", log),
                supervisor("inner", child("x", log), child("y", log)),
                child("b", log),
            )
        )
        log.clear()
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        await root.terminate_child("sup")
        assert log == [
            ("stop", "sup/b"),
            ("stop", "sup/inner/y"),
            ("stop", "sup/inner/x"),
            ("stop", "sup/a"),
        ]
        with pytest.raises(gr.ActorStopped):
            await rt.ref("sup/a").ask(Ping())
        log.clear()
    assert log == []


class HangsOnce(Recorder):
    """Hangs on the first delivery of :class:`Hang` (until cancelled); answers later ones."""

    def __init__(self, log: Log, entered: anyio.Event) -> None:
        super().__init__(log)
        self.entered = entered

    @gr.handler
    async def hang(self, msg: Hang) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        self.log.record(f"hang attempt {envelope.attempt}", self.ctx.name)
        if envelope.attempt == 1:
            self.entered.set()
            try:
                await anyio.sleep_forever()
            except BaseException:
                self.log.record("cancelled", self.ctx.name)
                raise
        return envelope.attempt


async def test_group_restart_cancels_a_hanging_sibling_after_its_shutdown_and_redelivers() -> None:
    log = Log()
    entered = anyio.Event()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor(
                "sup",
                gr.ChildSpec(actor=HangsOnce, id="a", args=(log, entered), shutdown=0.05),
                child("b", log),
                strategy="one_for_all",
            )
        )
        log.clear()
        async with anyio.create_task_group() as tg:
            answers: list[int] = []

            async def ask_a() -> None:
                answers.append(await rt.ref("sup/a").ask(Hang()))

            tg.start_soon(ask_a)
            with anyio.fail_after(3):
                await entered.wait()
            started = time.monotonic()
            with pytest.raises(gr.HandlerError):
                await rt.ref("sup/b").ask(Crash())
        assert time.monotonic() - started >= 0.05 - 1e-3
        assert answers == [2], "the cancelled message is handled again by the new instance"
        assert log.of("cancelled", "hang attempt 2", *LIFECYCLE) == [
            ("stop", "sup/b"),
            ("cancelled", "sup/a"),
            ("stop", "sup/a"),
            ("restart", "sup/a"),
            ("restart", "sup/b"),
            ("hang attempt 2", "sup/a"),
        ]
        assert await statuses(sup) == {"a": "running", "b": "running"}


async def test_runtime_exit_during_a_restart_backoff_does_not_wait_for_it() -> None:
    log = Log()
    backoff = gr.Backoff(initial=60.0, maximum=60.0, jitter=0.0)
    outcome: list[BaseException] = []

    async def ask_and_keep(ref: gr.ActorRef) -> None:
        try:
            await ref.ask(Ping(), timeout=30.0)
        except gr.GreenroomError as exc:
            outcome.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, gr.Runtime() as rt:
            sup = await rt.spawn(supervisor("sup", child("a", log), backoff=backoff))
            with pytest.raises(gr.HandlerError):
                await rt.ref("sup/a").ask(Crash())
            assert await statuses(sup) == {"a": "restarting"}
            tg.start_soon(ask_and_keep, rt.ref("sup/a"))
            await wait_until(
                lambda: rt.statistics().pending_asks == 1,
            )
            log.clear()
    assert ("restart", "sup/a") not in log
    assert [type(e) for e in outcome] == [gr.ActorStopped]


async def test_queued_ask_to_a_child_that_stops_itself_fails_with_actor_stopped() -> None:
    log = Log()
    entered = anyio.Event()
    async with gr.Runtime() as rt:
        await rt.spawn(
            supervisor(
                "sup",
                gr.ChildSpec(
                    actor=Sleeper, id="s", args=(log, entered), restart="transient", shutdown=0.05
                ),
            )
        )
        s = rt.ref("sup/s")
        await s.tell(Exit())
        with pytest.raises(gr.ActorStopped):
            await s.ask(Ping(), timeout=3.0)
        assert [d.reason for d in rt.dead_letters.list(actor="sup/s")] == ["actor_stopped"]


async def test_supervisor_shutdown_time_bounds_its_subtree_and_stops_every_child() -> None:
    # OTP: past its shutdown time a supervisor is killed, and its children
    # with it; none is left running.
    log = Log()

    class SlowStop(Recorder):
        async def on_stop(self) -> None:
            self.log.record("stop", self.ctx.name)
            await anyio.sleep_forever()

    async with gr.Runtime() as rt:
        await rt.spawn(
            supervisor(
                "sup",
                child("a", log),
                child("slow", log, actor=SlowStop, shutdown=5.0),
                child("c", log),
                shutdown=0.1,
            )
        )
        log.clear()
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        started = time.monotonic()
        await root.terminate_child("sup")
        assert time.monotonic() - started < 5.0, "bounded by the supervisor's shutdown"
        for name in ("sup/a", "sup/slow", "sup/c"):
            with pytest.raises(gr.ActorStopped):
                rt.ref(name)
        assert log[0] == ("stop", "sup/c")
        # killed when the supervisor's time ran out: no on_stop for "a"
        assert ("stop", "sup/a") not in log
