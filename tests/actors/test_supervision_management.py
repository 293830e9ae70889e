"""Managing children while the supervisor runs, significant children, and spec validation."""

from __future__ import annotations

import time
from typing import Any

import pytest

import greenroom as gr
from tests.actors._support import (
    Boom,
    Crash,
    Exit,
    FailsToStart,
    Ignored,
    Log,
    Ping,
    Recorder,
    child,
    root_statuses,
    spawn_auto,
    statuses,
    supervisor,
    wait_until,
)

pytestmark = pytest.mark.anyio

LIFECYCLE = ("start", "restart", "stop")


async def start_sup(rt: gr.Runtime, log: Log, *children: gr.ChildSpec, **options: Any) -> Any:
    sup = await rt.spawn(supervisor("sup", *children, **options))
    log.clear()
    return sup


# -- start, terminate, restart, delete, which_children ------------------------------


async def test_start_child_appends_a_running_child_and_returns_its_id_and_ref() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log))
        child_id, ref = await sup.start_child(child("b", log))
        assert child_id == "b"
        assert isinstance(ref, gr.ActorRef)
        assert await ref.ask(Ping()) == "sup/b"
        assert log == [("start", "sup/b")]
        infos = await sup.which_children()
        assert [(c.id, c.name, c.kind, c.status, c.restart) for c in infos] == [
            ("a", "sup/a", "worker", "running", "permanent"),
            ("b", "sup/b", "worker", "running", "permanent"),
        ]
        log.clear()
    assert log == [("stop", "sup/b"), ("stop", "sup/a")]


async def test_start_child_without_id_gets_a_unique_one() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log)
        spec = gr.ChildSpec(actor=Recorder, args=(log,))
        first = await sup.start_child(spec)
        second = await sup.start_child(spec)
        assert first.id != second.id
        assert first.ref != second.ref
        ids = list(await statuses(sup))
        assert ids == [first.id, second.id]
        assert all(i.startswith("recorder") for i in ids)


async def test_started_child_is_supervised_like_the_others() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log), strategy="one_for_all")
        await sup.start_child(child("b", log))
        log.clear()
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        await sup.which_children()
        assert log.of(*LIFECYCLE) == [
            ("stop", "sup/b"),
            ("stop", "sup/a"),
            ("restart", "sup/a"),
            ("restart", "sup/b"),
        ]


async def test_start_child_with_a_taken_id_is_invalid_spec() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log))
        with pytest.raises(gr.InvalidSpec, match="'a'"):
            await sup.start_child(child("a", log))
        assert log == []
        assert await statuses(sup) == {"a": "running"}


async def test_start_child_whose_start_fails_leaves_the_siblings_running() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log))
        with pytest.raises(gr.ChildStartFailed) as raised:
            await sup.start_child(child("bad", log, actor=FailsToStart))
        assert raised.value.child == "sup/bad"
        assert log == [("start_failed", "sup/bad")]
        assert await statuses(sup) == {"a": "running"}


async def test_start_child_that_returns_ignore_is_listed_as_ignored() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log)
        _, ref = await sup.start_child(child("skip", log, actor=Ignored))
        assert log == [("ignore", "sup/skip")]
        assert await statuses(sup) == {"skip": "ignored"}
        # The ref reaches no running actor: it refuses at once (no hang until the timeout).
        with pytest.raises(gr.ActorStopped):
            await ref.ask(Ping(), timeout=0.5)


async def test_terminate_child_stops_it_without_restart_and_keeps_its_spec() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log), child("b", log), strategy="one_for_all")
        await sup.terminate_child("a")
        assert log == [("stop", "sup/a")]
        assert await statuses(sup) == {"a": "stopped", "b": "running"}
        with pytest.raises(gr.ActorStopped):
            await rt.ref("sup/a").ask(Ping())
        log.clear()
        # OTP (supervisor.erl, restart_multiple_children): a group restart
        # starts every kept child of the group, a terminated one included,
        # afresh (on_start), in start order.
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        assert await statuses(sup) == {"a": "running", "b": "running"}
        assert log.of(*LIFECYCLE) == [("stop", "sup/b"), ("start", "sup/a"), ("restart", "sup/b")]


async def test_terminate_child_forgets_a_temporary_child() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log), child("t", log, restart="temporary"))
        await sup.terminate_child("t")
        assert log == [("stop", "sup/t")]
        assert await statuses(sup) == {"a": "running"}


async def test_restart_child_starts_a_terminated_child_again_in_its_place() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log), child("b", log), child("c", log))
        old = rt.ref("sup/b")
        await sup.terminate_child("b")
        ref = await sup.restart_child("b")
        assert log == [("stop", "sup/b"), ("start", "sup/b")]
        assert await statuses(sup) == {"a": "running", "b": "running", "c": "running"}
        assert await ref.ask(Ping()) == "sup/b"
        assert await old.ask(Ping()) == "sup/b", "an old ref finds the new incarnation"


async def test_restart_child_starts_a_transient_child_that_exited() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("w", log, restart="transient"))
        await rt.ref("sup/w").ask(Exit())
        assert await statuses(sup) == {"w": "stopped"}
        await sup.restart_child("w")
        assert await statuses(sup) == {"w": "running"}
        assert log.of(*LIFECYCLE) == [("stop", "sup/w"), ("start", "sup/w")]


async def test_restart_child_whose_start_fails_raises_child_start_failed() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log)
        with pytest.raises(gr.ChildStartFailed):
            await sup.start_child(child("bad", log, actor=FailsToStart))
        # Not kept after a failed start_child (OTP): nothing to restart.
        with pytest.raises(gr.InvalidSpec):
            await sup.restart_child("bad")
        await sup.start_child(child("later", log, actor=FailingLater))
        await sup.terminate_child("later")
        FailingLater.fail = True
        try:
            with pytest.raises(gr.ChildStartFailed) as raised:
                await sup.restart_child("later")
        finally:
            FailingLater.fail = False
        assert raised.value.error_type == "tests.actors._support.Boom"
        assert await statuses(sup) == {"later": "stopped"}


class FailingLater(Recorder):
    """Starts normally until the test flips ``fail``."""

    fail = False

    async def on_start(self) -> None:
        await super().on_start()
        if FailingLater.fail:
            raise Boom("cannot start any more")


@pytest.mark.parametrize("status", ["running", "restarting"])
async def test_restart_child_of_a_live_child_is_invalid_spec(status: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        backoff = gr.Backoff(initial=30.0, maximum=30.0, jitter=0.0)
        sup = await start_sup(rt, log, child("a", log), backoff=backoff)
        if status == "restarting":
            with pytest.raises(gr.HandlerError):
                await rt.ref("sup/a").ask(Crash())
        assert await statuses(sup) == {"a": status}
        with pytest.raises(gr.InvalidSpec, match=status):
            await sup.restart_child("a")


async def test_delete_child_forgets_a_stopped_child() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log), child("b", log))
        await sup.terminate_child("a")
        await sup.delete_child("a")
        assert await statuses(sup) == {"b": "running"}
        with pytest.raises(gr.InvalidSpec):
            await sup.restart_child("a")
        # the id is free again
        await sup.start_child(child("a", log))
        assert await statuses(sup) == {"b": "running", "a": "running"}


async def test_delete_child_of_a_running_child_is_invalid_spec() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log))
        with pytest.raises(gr.InvalidSpec, match="terminate it first"):
            await sup.delete_child("a")
        assert await statuses(sup) == {"a": "running"}
        assert log == []


@pytest.mark.parametrize("call", ["terminate_child", "restart_child", "delete_child"])
async def test_management_call_with_an_unknown_id_is_invalid_spec(call: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log))
        with pytest.raises(gr.InvalidSpec, match=r"'nope'.*it has: a"):
            await getattr(sup, call)("nope")
        assert await statuses(sup) == {"a": "running"}


async def test_which_children_reports_restarting_during_the_backoff() -> None:
    log = Log()
    backoff = gr.Backoff(initial=0.2, maximum=0.2, jitter=0.0)
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log), child("b", log), backoff=backoff)
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        assert await statuses(sup) == {"a": "running", "b": "restarting"}
        await wait_until(lambda: ("restart", "sup/b") in log)
        infos = await sup.which_children()
        assert [(c.id, c.status, c.failures) for c in infos] == [
            ("a", "running", 0),
            ("b", "running", 1),
        ]


async def test_terminate_child_during_the_backoff_cancels_the_restart() -> None:
    log = Log()
    backoff = gr.Backoff(initial=0.05, maximum=0.05, jitter=0.0)
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log), backoff=backoff)
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/a").ask(Crash())
        await sup.terminate_child("a")
        assert await statuses(sup) == {"a": "stopped"}
        # Outlast the backoff on the monotonic clock: the restart that was due must not happen.
        crashed = log.at("crash", "sup/a")
        await wait_until(lambda: time.monotonic() - crashed > 0.1)
        assert await statuses(sup) == {"a": "stopped"}
        assert log.of(*LIFECYCLE) == [("stop", "sup/a")]


async def test_management_of_a_stopped_supervisor_raises_actor_stopped() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await start_sup(rt, log, child("a", log))
        root = rt.ref("root")
        assert isinstance(root, gr.SupervisorRef)
        await root.terminate_child("sup")
        with pytest.raises(gr.ActorStopped):
            await sup.which_children()


# -- significant children and auto shutdown -----------------------------------------


@pytest.mark.parametrize("restart", ["transient", "temporary"])
async def test_any_significant_exit_shuts_the_supervisor_down(restart: str) -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await spawn_auto(
            rt,
            log,
            "any_significant",
            child("a", log),
            child("w", log, restart=restart, significant=True),  # type: ignore[arg-type]
            child("c", log),
        )
        await rt.ref("sup/w").ask(Exit())
        await wait_until(lambda: len(log.of("stop")) == 3)
        assert await root_statuses(rt) == {"sup": "stopped"}
        assert log.of(*LIFECYCLE) == [("stop", "sup/w"), ("stop", "sup/c"), ("stop", "sup/a")]


async def test_temporary_significant_failure_shuts_the_supervisor_down() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        await spawn_auto(
            rt,
            log,
            "any_significant",
            child("a", log),
            child("w", log, restart="temporary", significant=True),
        )
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/w").ask(Crash())
        await wait_until(lambda: len(log.of("stop")) == 2)
        assert await root_statuses(rt) == {"sup": "stopped"}
        assert log.of(*LIFECYCLE) == [("stop", "sup/w"), ("stop", "sup/a")]


async def test_transient_significant_failure_restarts_it_and_keeps_the_supervisor() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await spawn_auto(
            rt,
            log,
            "any_significant",
            child("a", log),
            child("w", log, restart="transient", significant=True),
        )
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/w").ask(Crash())
        assert await statuses(sup) == {"a": "running", "w": "running"}
        assert log.of(*LIFECYCLE) == [("stop", "sup/w"), ("restart", "sup/w")]


async def test_all_significant_waits_for_the_last_significant_child() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await spawn_auto(
            rt,
            log,
            "all_significant",
            child("a", log),
            child("w1", log, restart="transient", significant=True),
            child("w2", log, restart="temporary", significant=True),
        )
        await rt.ref("sup/w1").ask(Exit())
        assert await statuses(sup) == {"a": "running", "w1": "stopped", "w2": "running"}
        await rt.ref("sup/w2").ask(Exit())
        await wait_until(lambda: len(log.of("stop")) == 3)
        assert await root_statuses(rt) == {"sup": "stopped"}
        assert log.of(*LIFECYCLE) == [("stop", "sup/w1"), ("stop", "sup/w2"), ("stop", "sup/a")]


async def test_non_significant_exit_does_not_shut_the_supervisor_down() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await spawn_auto(
            rt,
            log,
            "any_significant",
            child("a", log, restart="transient"),
            child("w", log, restart="transient", significant=True),
        )
        await rt.ref("sup/a").ask(Exit())
        assert await statuses(sup) == {"a": "stopped", "w": "running"}


async def test_terminating_a_significant_child_does_not_shut_the_supervisor_down() -> None:
    # OTP: auto shutdown reacts to a significant child exiting by itself, not
    # to the supervisor terminating it.
    log = Log()
    async with gr.Runtime() as rt:
        sup = await spawn_auto(
            rt,
            log,
            "any_significant",
            child("a", log),
            child("w", log, restart="transient", significant=True),
        )
        await sup.terminate_child("w")
        assert await statuses(sup) == {"a": "running", "w": "stopped"}
        assert await root_statuses(rt) == {"sup": "running"}


# -- invalid specs -------------------------------------------------------------------


def _child(**fields: Any) -> gr.ChildSpec:
    return gr.ChildSpec(**{"actor": Recorder, **fields})


def _pool(**fields: Any) -> gr.PoolSpec:
    return gr.PoolSpec(**{"id": "p", "worker": gr.ChildSpec(actor=Recorder), "size": 1, **fields})


def _sup(**fields: Any) -> gr.SupervisorSpec:
    return gr.SupervisorSpec(**{"id": "s", **fields})


class NotAnActor:
    pass


INVALID: list[tuple[str, Any, str]] = [
    ("backoff_initial_negative", lambda: gr.Backoff(initial=-0.1), "Backoff.initial"),
    ("backoff_maximum_negative", lambda: gr.Backoff(maximum=-1), "Backoff.maximum"),
    ("backoff_multiplier_below_one", lambda: gr.Backoff(multiplier=0.5), "Backoff.multiplier"),
    ("backoff_jitter_above_one", lambda: gr.Backoff(jitter=1.5), "Backoff.jitter"),
    ("backoff_jitter_negative", lambda: gr.Backoff(jitter=-0.1), "Backoff.jitter"),
    ("retry_zero_attempts", lambda: gr.RetryPolicy(max_attempts=0), "max_attempts"),
    ("retry_float_attempts", lambda: gr.RetryPolicy(max_attempts=2.5), "max_attempts"),
    (
        "retry_on_base_exception",
        lambda: gr.RetryPolicy(retry_on=(KeyboardInterrupt,)),
        "retry_on",
    ),
    ("retry_on_not_a_type", lambda: gr.RetryPolicy(retry_on=("ValueError",)), "retry_on"),
    ("child_actor_not_an_actor", lambda: gr.ChildSpec(actor=NotAnActor), "ChildSpec.actor"),
    ("child_actor_an_instance", lambda: gr.ChildSpec(actor=Recorder(Log())), "ChildSpec.actor"),
    ("child_id_empty", lambda: _child(id=""), "ChildSpec.id"),
    ("child_id_with_slash", lambda: _child(id="a/b"), "ChildSpec.id"),
    ("child_restart_unknown", lambda: _child(restart="sometimes"), "ChildSpec.restart"),
    ("child_shutdown_negative", lambda: _child(shutdown=-1.0), "ChildSpec.shutdown"),
    (
        "child_significant_permanent",
        lambda: _child(significant=True),
        "significant but permanent",
    ),
    ("child_handler_timeout_zero", lambda: _child(handler_timeout=0), "handler_timeout"),
    ("child_handler_timeout_negative", lambda: _child(handler_timeout=-1), "handler_timeout"),
    ("child_throughput_zero", lambda: _child(throughput=0), "throughput"),
    ("child_args_a_list", lambda: _child(args=[1]), "ChildSpec.args"),
    ("pool_id_empty", lambda: _pool(id=""), "PoolSpec.id"),
    ("pool_worker_not_a_child_spec", lambda: _pool(worker=Recorder), "PoolSpec.worker"),
    ("pool_size_negative", lambda: _pool(size=-1), "PoolSpec.size"),
    ("pool_routing_unknown", lambda: _pool(routing="random"), "PoolSpec.routing"),
    ("pool_hash_without_key", lambda: _pool(routing="consistent_hash"), "needs key="),
    ("pool_max_restarts_negative", lambda: _pool(max_restarts=-1), "max_restarts"),
    ("pool_within_zero", lambda: _pool(within=0), "PoolSpec.within"),
    (
        "pool_significant_permanent",
        lambda: _pool(significant=True),
        "significant but permanent",
    ),
    ("sup_id_with_slash", lambda: _sup(id="x/y"), "SupervisorSpec.id"),
    ("sup_strategy_unknown", lambda: _sup(strategy="all_for_one"), "strategy"),
    ("sup_auto_shutdown_unknown", lambda: _sup(auto_shutdown="sometimes"), "auto_shutdown"),
    ("sup_max_restarts_negative", lambda: _sup(max_restarts=-1), "max_restarts"),
    ("sup_max_restarts_float", lambda: _sup(max_restarts=1.5), "max_restarts"),
    ("sup_within_zero", lambda: _sup(within=0), "SupervisorSpec.within"),
    ("sup_within_negative", lambda: _sup(within=-5.0), "SupervisorSpec.within"),
    ("sup_restart_unknown", lambda: _sup(restart="always"), "SupervisorSpec.restart"),
    ("sup_children_a_list", lambda: _sup(children=[_child(id="a")]), "tuple"),
    ("sup_child_not_a_spec", lambda: _sup(children=(Recorder,)), "not a spec"),
    (
        "sup_duplicate_child_ids",
        lambda: _sup(children=(_child(id="a"), _sup(id="a"))),
        "two children with id 'a'",
    ),
    (
        "sup_duplicate_default_ids",
        lambda: _sup(children=(_child(), _child())),
        "two children with id 'recorder'",
    ),
]


@pytest.mark.parametrize(
    ("build", "match"), [(b, m) for _, b, m in INVALID], ids=[i for i, _, _ in INVALID]
)
def test_invalid_spec_is_refused_at_construction(build: Any, match: str) -> None:
    with pytest.raises(gr.InvalidSpec, match=match):
        build()


def test_valid_specs_document_their_defaults() -> None:
    spec = gr.ChildSpec(actor=Recorder)
    assert (spec.child_id, spec.restart, spec.shutdown, spec.significant) == (
        "recorder",
        "permanent",
        5.0,
        False,
    )
    assert (spec.retry.max_attempts, spec.handler_timeout, spec.throughput) == (3, None, 64)
    sup = gr.SupervisorSpec(id="s")
    assert (sup.strategy, sup.max_restarts, sup.within, sup.auto_shutdown) == (
        "one_for_one",
        10,
        10.0,
        "never",
    )
    # zero is a valid shutdown (cancel at once) and a valid backoff
    gr.ChildSpec(actor=Recorder, shutdown=0)
    gr.Backoff(initial=0, maximum=0, jitter=0)
    gr.SupervisorSpec(id="s", max_restarts=0)


async def test_spawning_an_invalid_spec_fails_before_anything_starts() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        with pytest.raises(gr.InvalidSpec):
            await rt.spawn(supervisor("sup", child("a", log), child("a", log)))
        assert log == []
        assert await root_statuses(rt) == {}
