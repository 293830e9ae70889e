"""The Coordinator routes by message type, then by conversation: one worker, in order."""

from __future__ import annotations

import pytest

import greenroom as gr
from greenroom.agent import Answer, Coordinator, Request, Resolve, conversation_pool
from tests.agent._kit import CONVERSATIONS, desk, worker_spec

pytestmark = pytest.mark.anyio


async def test_a_conversation_keeps_one_worker_and_its_order() -> None:
    workers: dict[str, set[str]] = {}
    async with desk(size=4) as d:
        for n in range(10):
            for c in range(12):
                await d.ref.tell(Request(conversation=f"c{c}", text=f"message {n}", user="ada"))
        for c in range(12):
            answer = await d.ask(f"c{c}", "last")
            assert isinstance(answer, Answer)
            workers.setdefault(answer.worker, set()).add(f"c{c}")
        saved = {c: await d.store.get(CONVERSATIONS, f"c{c}") for c in range(12)}
    assert len(workers) > 1  # spread over the pool
    for record in saved.values():
        assert record is not None
        users = [m.content for m in record.value.messages if m.role == "user"]
        assert users == [f"message {n}" for n in range(10)] + ["last"]


async def test_the_same_conversation_is_answered_by_the_same_worker() -> None:
    async with desk(size=4) as d:
        first = [await d.ask(f"c{c}", "hi") for c in range(8)]
        again = [await d.ask(f"c{c}", "hi again") for c in range(8)]
    assert [a.worker for a in first] == [a.worker for a in again]  # type: ignore[attr-defined]


async def test_a_message_type_without_a_route_is_refused_with_the_routes_named() -> None:
    class Unrouted(gr.Message):
        conversation: str

    async with desk() as d:
        with pytest.raises(gr.UnknownMessage, match="Request"):
            await d.ref.ask(Unrouted(conversation="c1"))


def test_a_route_to_a_missing_pool_is_refused() -> None:
    with pytest.raises(gr.InvalidSpec, match="'nowhere'"):
        Coordinator(
            "desk",
            routes={Request: "nowhere"},
            pools=[conversation_pool("workers", worker_spec())],
        )


def test_the_spec_is_a_supervisor_of_the_children_then_the_pools() -> None:
    class Helper(gr.Actor):
        pass

    coordinator = Coordinator(
        "desk",
        routes={Request: "workers", Resolve: "workers"},
        pools=[conversation_pool("workers", worker_spec(), size=2)],
        children=(gr.ChildSpec(actor=Helper, id="helper"),),
    )
    spec = coordinator.spec()
    assert isinstance(spec, gr.SupervisorSpec)
    assert [c.child_id for c in spec.children] == ["helper", "workers"]
    pool = spec.children[1]
    assert isinstance(pool, gr.PoolSpec)
    assert (pool.routing, pool.key, pool.size) == ("consistent_hash", "conversation", 2)
