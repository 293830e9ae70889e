"""The child admin API, as OTP's ``supervisor`` defines it.

Modelled on ``supervisor_SUITE``'s ``child_adm``, ``extra_return``,
``count_children`` and ``sup_start_map`` (``get_childspec``): ``start_child``
returns the id and ref and tells ``already_started`` from ``already_present``;
``terminate_child`` keeps the spec (and is a no-op on a stopped child);
``restart_child`` and ``delete_child`` refuse a running child; an unknown id is
``not_found``. A hypothesis model runs random admin sequences against OTP's
rules, a one_for_all group restart included (it starts every kept child of
the group again, a terminated one too).
"""

from __future__ import annotations

from typing import Literal

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.actors import Restart
from tests.actors._support import (
    NO_BACKOFF,
    Crash,
    FailsToStart,
    Ignored,
    Log,
    Ping,
    Recorder,
    child,
    statuses,
    supervisor,
)

pytestmark = pytest.mark.anyio


async def test_start_terminate_restart_delete_answer_as_otp_child_adm() -> None:
    """OTP supervisor_SUITE child_adm: each admin call in each child state."""
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("child1", log)))
        ref = rt.ref("sup/child1")
        assert await sup.count_children() == gr.ChildCounts(
            specs=1, active=1, supervisors=0, workers=1
        )
        # start of an already running child: already_started, with its ref
        with pytest.raises(gr.ChildAlreadyStarted) as started:
            await sup.start_child(child("child1", log))
        assert (started.value.child, started.value.ref) == ("child1", ref)
        # termination
        with pytest.raises(gr.ChildNotFound):
            await sup.terminate_child("hej")
        await sup.terminate_child("child1")
        assert await statuses(sup) == {"child1": "stopped"}
        assert await sup.count_children() == gr.ChildCounts(
            specs=1, active=0, supervisors=0, workers=1
        )
        await sup.terminate_child("child1")  # terminating a stopped child succeeds
        # start of an existing but not running child: already_present
        with pytest.raises(gr.ChildAlreadyPresent):
            await sup.start_child(child("child1", log))
        # restart
        ref2 = await sup.restart_child("child1")
        assert await ref2.ask(Ping()) == "sup/child1"
        with pytest.raises(gr.ChildRunning) as running:
            await sup.restart_child("child1")
        assert running.value.status == "running"
        with pytest.raises(gr.ChildNotFound):
            await sup.restart_child("child2")
        # deletion
        with pytest.raises(gr.ChildRunning):
            await sup.delete_child("child1")
        with pytest.raises(gr.ChildNotFound):
            await sup.delete_child("hej")
        await sup.terminate_child("child1")
        await sup.delete_child("child1")
        with pytest.raises(gr.ChildNotFound):
            await sup.restart_child("child1")
        assert await sup.which_children() == []
        assert await sup.count_children() == gr.ChildCounts(
            specs=0, active=0, supervisors=0, workers=0
        )
        # start again
        child_id, ref3 = await sup.start_child(child("child1", log))
        assert child_id == "child1"
        assert await ref3.ask(Ping()) == "sup/child1"


async def test_admin_errors_are_invalid_spec_with_their_facts() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("a", log)))
        with pytest.raises(gr.ChildNotFound) as missing:
            await sup.get_childspec("zz")
        assert isinstance(missing.value, gr.InvalidSpec)
        assert (missing.value.supervisor, missing.value.child, missing.value.known) == (
            "sup",
            "zz",
            ("a",),
        )
        for error in (gr.ChildAlreadyStarted, gr.ChildAlreadyPresent, gr.ChildRunning):
            assert issubclass(error, gr.InvalidSpec)


async def test_restart_and_delete_refuse_a_restarting_child() -> None:
    # OTP: {error, restarting} while a restart is pending
    log = Log()
    backoff = gr.Backoff(initial=30.0, maximum=30.0, jitter=0.0)
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("a", log), backoff=backoff))
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/a").ask(Crash())
        for call in (sup.restart_child, sup.delete_child):
            with pytest.raises(gr.ChildRunning) as refused:
                await call("a")
            assert refused.value.status == "restarting"


async def test_get_childspec_returns_the_spec_with_its_defaults_and_id() -> None:
    # OTP sup_start_map: every key, defaults included
    log = Log()
    async with gr.Runtime() as rt:
        inner = gr.SupervisorSpec(id="inner")
        sup = await rt.spawn(supervisor("sup", child("child1", log), inner))
        spec = await sup.get_childspec("child1")
        assert isinstance(spec, gr.ChildSpec)
        assert (spec.id, spec.restart, spec.shutdown) == ("child1", "permanent", 5.0)
        assert await sup.get_childspec("inner") == inner
        started = await sup.start_child(gr.ChildSpec(actor=Recorder, args=(log,)))
        spec = await sup.get_childspec(started.id)
        assert isinstance(spec, gr.ChildSpec)
        assert spec.id == started.id


async def test_count_children_counts_specs_active_supervisors_and_workers() -> None:
    # OTP count_children: supervisors and workers count specs, running or not
    log = Log()
    async with gr.Runtime() as rt:
        worker = gr.ChildSpec(actor=Recorder, args=(log,))
        sup = await rt.spawn(
            supervisor(
                "sup",
                child("w1", log),
                child("w2", log),
                child("skip", log, actor=Ignored),
                gr.SupervisorSpec(id="inner"),
                gr.PoolSpec(id="pool", worker=worker, size=2),
            )
        )
        await sup.terminate_child("w2")
        assert await sup.count_children() == gr.ChildCounts(
            specs=5, active=3, supervisors=2, workers=3
        )


@pytest.mark.parametrize("strategy", ["one_for_all", "rest_for_one"])
async def test_a_terminated_child_is_started_again_by_a_group_restart(strategy: str) -> None:
    # OTP: terminate_children marks every kept child not running and
    # start_children starts each, so a child stopped by terminate_child
    # starts again (afresh: on_start) when its group restarts.
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(
            supervisor("sup", child("a", log), child("b", log), child("c", log), strategy=strategy)
        )
        await sup.terminate_child("c")
        log.clear()
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        assert await statuses(sup) == {"a": "running", "b": "running", "c": "running"}
        expected = [("stop", "sup/b"), ("restart", "sup/b"), ("start", "sup/c")]
        if strategy == "one_for_all":
            expected = [("stop", "sup/b"), ("stop", "sup/a"), ("restart", "sup/a"), *expected[1:]]
        assert log.of("start", "restart", "stop") == expected


async def test_one_for_one_leaves_a_terminated_sibling_stopped() -> None:
    log = Log()
    async with gr.Runtime() as rt:
        sup = await rt.spawn(supervisor("sup", child("a", log), child("b", log)))
        await sup.terminate_child("a")
        with pytest.raises(gr.HandlerError):
            await rt.ref("sup/b").ask(Crash())
        assert await statuses(sup) == {"a": "stopped", "b": "running"}


async def test_a_pool_accepts_only_workers_of_its_worker_class() -> None:
    class Other(gr.Actor):
        pass

    log = Log()
    async with gr.Runtime() as rt:
        pool = await rt.spawn(
            gr.PoolSpec(id="pool", worker=gr.ChildSpec(actor=Recorder, args=(log,)), size=1)
        )
        with pytest.raises(gr.InvalidSpec, match="only workers of Recorder"):
            await pool.start_child(gr.ChildSpec(actor=Other, id="x"))
        with pytest.raises(gr.InvalidSpec, match="only workers of Recorder"):
            await pool.start_child(gr.SupervisorSpec(id="x"))
        started = await pool.start_child(gr.ChildSpec(actor=Recorder, id="9", args=(log,)))
        assert started.ref.name == "pool/9"
        assert [c.id for c in await pool.which_children()] == ["0", "9"]


# -- a model of OTP's child admin, run against random sequences -----------------------

Kind = Literal["ok", "ignore", "temporary", "fails"]
IDS = ("a", "b", "c")

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("start"),
            st.sampled_from(IDS),
            st.sampled_from(["ok", "ignore", "temporary", "fails"]),
        ),
        st.tuples(
            st.sampled_from(["terminate", "restart", "delete", "crash"]),
            st.sampled_from(IDS),
            st.just("ok"),
        ),
    ),
    min_size=1,
    max_size=14,
)

ACTORS: dict[str, type[gr.Actor]] = {
    "ok": Recorder,
    "ignore": Ignored,
    "temporary": Recorder,
    "fails": FailsToStart,
}


class Model:
    """OTP's rules for a one_for_all supervisor, over ids in start order."""

    def __init__(self) -> None:
        self.children: dict[str, tuple[Kind, str]] = {}

    def start(self, cid: str, kind: Kind) -> type[Exception] | None:
        if cid in self.children:
            _, status = self.children[cid]
            return gr.ChildAlreadyStarted if status == "running" else gr.ChildAlreadyPresent
        if kind == "fails":
            return gr.ChildStartFailed
        self.children[cid] = (kind, "ignored" if kind == "ignore" else "running")
        return None

    def terminate(self, cid: str) -> type[Exception] | None:
        if cid not in self.children:
            return gr.ChildNotFound
        kind, status = self.children[cid]
        if kind == "temporary":
            del self.children[cid]
        elif status == "running":
            self.children[cid] = (kind, "stopped")
        return None

    def restart(self, cid: str) -> type[Exception] | None:
        if cid not in self.children:
            return gr.ChildNotFound
        kind, status = self.children[cid]
        if status == "running":
            return gr.ChildRunning
        self.children[cid] = (kind, "ignored" if kind == "ignore" else "running")
        return None

    def delete(self, cid: str) -> type[Exception] | None:
        if cid not in self.children:
            return gr.ChildNotFound
        if self.children[cid][1] == "running":
            return gr.ChildRunning
        del self.children[cid]
        return None

    def crash(self, cid: str) -> bool:
        """A permanent running child fails: the whole group restarts (one_for_all)."""
        entry = self.children.get(cid)
        if entry is None or entry != ("ok", "running"):
            return False
        for other, (kind, _) in list(self.children.items()):
            if kind == "temporary":
                del self.children[other]
            else:
                self.children[other] = (kind, "ignored" if kind == "ignore" else "running")
        return True

    def statuses(self) -> dict[str, str]:
        return {cid: status for cid, (_, status) in self.children.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_child_admin_matches_a_model_of_otp(sequence: list[tuple[str, str, Kind]]) -> None:
    async def main() -> None:
        log = Log()
        model = Model()
        async with gr.Runtime() as rt:
            sup = await rt.spawn(
                supervisor("sup", strategy="one_for_all", max_restarts=1000, backoff=NO_BACKOFF)
            )
            for op, cid, kind in sequence:
                if op == "crash":
                    if model.crash(cid):
                        with pytest.raises(gr.HandlerError):
                            await rt.ref(f"sup/{cid}").ask(Crash(), timeout=2.0)
                    continue
                expected: type[Exception] | None
                if op == "start":
                    expected = model.start(cid, kind)
                    restart: Restart = "temporary" if kind == "temporary" else "permanent"
                    call = sup.start_child(child(cid, log, actor=ACTORS[kind], restart=restart))
                else:
                    expected = getattr(model, op)(cid)
                    call = getattr(sup, f"{op}_child")(cid)
                if expected is None:
                    await call
                else:
                    with pytest.raises(expected):
                        await call
                assert await statuses(sup) == model.statuses(), (op, cid, kind)
            counts = await sup.count_children()
            assert counts.specs == len(model.children)
            assert counts.active == sum(s == "running" for s in model.statuses().values())

    anyio.run(main, backend="asyncio")
