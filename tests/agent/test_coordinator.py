"""The Coordinator's router forwards by message type, then by conversation: one worker, in order."""

from __future__ import annotations

import pytest

import greenroom as gr
from greenroom.agent import (
    Answer,
    Coordinator,
    KeyedPool,
    Request,
    Resolve,
    Router,
    conversation_pool,
    conversation_workers,
)
from greenroom.decide import Context
from tests.agent._kit import CONVERSATIONS, HOOKS, RULES, Hooked, desk, wait_until, worker_spec

pytestmark = pytest.mark.anyio

KINDS = pytest.mark.parametrize("keyed", [False, True], ids=["pool", "keyed"])


@KINDS
async def test_a_conversation_keeps_one_worker_and_its_order(keyed: bool) -> None:
    workers: dict[str, set[str]] = {}
    async with desk(size=4, keyed=keyed) as d:
        for n in range(10):
            for c in range(12):
                await d.ref.tell(Request(conversation=f"c{c}", text=f"message {n}", user="ada"))
        for c in range(12):
            answer = await d.ask(f"c{c}", "last")
            assert isinstance(answer, Answer)
            workers.setdefault(answer.worker, set()).add(f"c{c}")
        saved = {c: await d.store.get(CONVERSATIONS, f"c{c}") for c in range(12)}
    assert len(workers) > 1  # spread over the workers
    for record in saved.values():
        assert record is not None
        users = [m.content for m in record.value.messages if m.role == "user"]
        assert users == [f"message {n}" for n in range(10)] + ["last"]


@KINDS
async def test_the_same_conversation_is_answered_by_the_same_worker(keyed: bool) -> None:
    async with desk(size=4, keyed=keyed) as d:
        first = [await d.ask(f"c{c}", "hi") for c in range(8)]
        again = [await d.ask(f"c{c}", "hi again") for c in range(8)]
    assert [a.worker for a in first] == [a.worker for a in again]  # type: ignore[attr-defined]


async def test_a_keyed_pool_starts_one_worker_per_conversation_on_its_first_message() -> None:
    async with desk(keyed=True) as d:
        pool = d.runtime.ref("desk/workers")
        assert isinstance(pool, gr.SupervisorRef)
        assert await pool.which_children() == []  # nothing before the first message
        a = await d.ask("ada-1", "hi")
        b = await d.ask("a/b", "hi")  # a key with a '/' is quoted in the worker's name
        children = await pool.which_children()
    assert isinstance(a, Answer)
    assert isinstance(b, Answer)
    assert (a.worker, b.worker) == ("desk/workers/ada-1", "desk/workers/a%2Fb")
    assert [(c.id, c.status, c.restart) for c in children] == [
        ("ada-1", "running", "transient"),
        ("a%2Fb", "running", "transient"),
    ]


async def test_any_actor_or_outside_caller_can_ask_the_coordinator() -> None:
    class Asker(gr.Actor):
        @gr.handler
        async def request(self, msg: Request) -> object:
            return await self.ctx.ask(self.ctx.runtime.ref("desk/router"), msg)

    async with desk(keyed=True) as d:
        assert d.ref == d.runtime.ref("desk/router")
        asker = await d.runtime.spawn(Asker, name="asker")
        through_actor = await asker.ask(Request(conversation="c1", text="hi", user="ada"))
        from_outside = await d.runtime.ref("desk/router").ask(
            Request(conversation="c1", text="again", user="ada")
        )
    assert isinstance(through_actor, Answer)
    assert isinstance(from_outside, Answer)
    assert through_actor.worker == from_outside.worker == "desk/workers/c1"
    assert from_outside.text == "en: hello, message 4"  # system, hi, reply, again


@KINDS
async def test_a_message_type_without_a_route_is_refused_with_the_routes_named(
    keyed: bool,
) -> None:
    class Unrouted(gr.Message):
        conversation: str

    async with desk(keyed=keyed) as d:
        with pytest.raises(gr.UnknownMessage, match="Request") as caught:
            await d.ref.ask(Unrouted(conversation="c1"))
        letters = d.runtime.dead_letters.list(reason="unknown_message")
    assert caught.value.actor == "desk/router"
    assert [letter.actor for letter in letters] == ["desk/router"]


@KINDS
async def test_a_worker_failure_reaches_the_asker_from_the_worker(keyed: bool) -> None:
    async def crash(context: Context) -> None:
        if context.messages[-1].content == "crash":
            raise ConnectionError("the model went away")

    spec = worker_spec(Hooked(RULES, crash), attempts=2)
    async with desk(spec, keyed=keyed) as d:
        with pytest.raises(gr.HandlerError) as caught:
            await d.ask("c1", "crash")
        assert isinstance(await d.ask("c2", "still routing?"), Answer)  # the router went on
    assert caught.value.actor.startswith("desk/workers/")
    assert caught.value.error_type == "ConnectionError"
    assert caught.value.attempts == 2


async def test_a_restarted_router_adopts_the_workers_still_running() -> None:
    async with desk(keyed=True) as d:
        first = await d.ask("c1", "hi")
        coordinator = d.runtime.ref("desk")
        assert isinstance(coordinator, gr.SupervisorRef)
        await coordinator.terminate_child("router")
        await coordinator.restart_child("router")
        again = await d.ask("c1", "again")
    assert isinstance(first, Answer)
    assert isinstance(again, Answer)
    assert again.worker == first.worker
    assert HOOKS.starts == ["desk/workers/c1"]  # the same worker: not started again
    assert again.text == "en: hello, message 4"  # the conversation went on


def test_a_route_to_a_missing_pool_is_refused() -> None:
    with pytest.raises(gr.InvalidSpec, match="'nowhere'"):
        Coordinator(
            "desk",
            routes={Request: "nowhere"},
            pools=[conversation_pool("workers", worker_spec())],
        )


def test_a_routed_type_without_the_pools_key_is_refused() -> None:
    class Keyless(gr.Message):
        text: str

    with pytest.raises(gr.InvalidSpec, match="has no field 'conversation'"):
        Coordinator(
            "desk",
            routes={Keyless: "workers"},
            pools=[conversation_workers("workers", worker_spec())],
        )


def test_the_router_id_is_reserved_and_ids_are_distinct() -> None:
    class Helper(gr.Actor):
        pass

    with pytest.raises(gr.InvalidSpec, match="'router' is its router's"):
        Coordinator(
            "desk",
            routes={Request: "workers"},
            pools=[conversation_workers("workers", worker_spec())],
            children=(gr.ChildSpec(actor=Helper, id="router"),),
        )


def test_a_passivated_keyed_pool_needs_an_entity_worker() -> None:
    class Plain(gr.Actor):
        pass

    with pytest.raises(gr.InvalidSpec, match="not an Entity"):
        KeyedPool(id="workers", worker=gr.ChildSpec(actor=Plain))
    KeyedPool(id="workers", worker=gr.ChildSpec(actor=Plain), passivate_after=None)


def test_the_spec_is_a_supervisor_of_the_children_then_the_pools_then_the_router() -> None:
    class Helper(gr.Actor):
        pass

    coordinator = Coordinator(
        "desk",
        routes={Request: "workers", Resolve: "fixed"},
        pools=[
            conversation_workers("workers", worker_spec()),
            conversation_pool("fixed", worker_spec(), size=2),
        ],
        children=(gr.ChildSpec(actor=Helper, id="helper"),),
    )
    spec = coordinator.spec()
    assert isinstance(spec, gr.SupervisorSpec)
    assert spec.strategy == "one_for_one"
    assert [c.child_id for c in spec.children] == ["helper", "workers", "fixed", "router"]
    keyed, fixed, router = spec.children[1:]
    assert isinstance(keyed, gr.SupervisorSpec)
    assert keyed.children == ()  # workers start with their conversations
    assert isinstance(fixed, gr.PoolSpec)
    assert (fixed.routing, fixed.key, fixed.size) == ("consistent_hash", "conversation", 2)
    assert isinstance(router, gr.ChildSpec)
    assert issubclass(router.actor, Router)
    assert coordinator.pool_of(Request) == "workers"


async def test_a_keyed_pool_restarted_by_its_supervisor_gets_new_workers_on_demand() -> None:
    async def crash(context: Context) -> None:
        if context.messages[-1].content == "crash":
            raise ConnectionError("the model went away")

    strict = KeyedPool(
        id="workers", worker=worker_spec(Hooked(RULES, crash), attempts=1), max_restarts=0
    )  # one failure and the pool supervisor gives up
    coordinator = Coordinator("desk", routes={Request: "workers"}, pools=[strict])
    HOOKS.reset()
    async with gr.Runtime(extensions=[gr.StoreAccess(gr.MemoryStore())]) as rt:
        ref = await coordinator.start(rt)
        await ref.ask(Request(conversation="c1", text="hi", user="ada"))
        with pytest.raises(gr.HandlerError):
            await ref.ask(Request(conversation="c1", text="crash", user="ada"))
        desk_sup = rt.ref("desk")
        assert isinstance(desk_sup, gr.SupervisorRef)

        async def pool_restarted() -> bool:
            children = await desk_sup.which_children()
            return [c.status for c in children if c.id == "workers"] == ["running"]

        await wait_until(pool_restarted)  # with no worker: c1's is gone, unknown to the router
        answer = await ref.ask(Request(conversation="c1", text="again", user="ada"))
        letters = rt.dead_letters.list()
    assert isinstance(answer, Answer)
    assert answer.text == "en: hello, message 4"  # system, hi, reply, again: from the store
    assert HOOKS.starts == ["desk/workers/c1", "desk/workers/c1"]
    assert [letter.reason for letter in letters] == ["handler_failed"]  # nothing else lost
