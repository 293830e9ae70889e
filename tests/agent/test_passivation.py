"""Idle conversations leave the worker's memory and come back from the store."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import msgspec
import pytest

import greenroom as gr
from greenroom.agent import Answer, Request
from greenroom.decide import ChatMessage
from greenroom.tools import Approve
from tests.agent import _kit
from tests.agent._kit import CONVERSATIONS, HOOKS, Desk, desk, wait_until, worker_spec

pytestmark = pytest.mark.anyio


async def test_an_idle_conversation_leaves_memory_and_comes_back_from_the_store() -> None:
    _kit.PASSIVATED.clear()
    _kit.PASSIVATED_EVENT = anyio.Event()
    async with desk(worker_spec(passivate_after=0.0)) as d:
        await d.ask("c1", "hi")
        with anyio.fail_after(5):
            await _kit.PASSIVATED_EVENT.wait()
        assert _kit.PASSIVATED == ["c1"]
        # Change the stored state behind the worker's back: only a reload can see it.
        record = await d.store.get(CONVERSATIONS, "c1")
        assert record is not None
        extra = record.value.add(ChatMessage.user("from the store"))
        await d.store.write(CONVERSATIONS, "c1", extra, expected=record.version)
        answer = await d.ask("c1", "are you back?")
        saved = await d.store.get(CONVERSATIONS, "c1")
    _kit.PASSIVATED_EVENT = None
    assert isinstance(answer, Answer)
    assert answer.text == "en: hello, message 5"  # system, hi, reply, from the store, are you back
    assert saved is not None
    assert [m.content for m in saved.value.messages][2] == "from the store"
    assert saved.version == 3


async def test_without_an_idle_limit_a_conversation_stays_in_memory() -> None:
    _kit.PASSIVATED.clear()
    async with desk(worker_spec(passivate_after=None)) as d:
        await d.ask("c1", "hi")
        await d.ask("c1", "again")
        record = await d.store.get(CONVERSATIONS, "c1")
    assert _kit.PASSIVATED == []
    assert record is not None
    assert msgspec.structs.asdict(record.value)["turns"] == 2


# -- keyed pools: the whole worker of an idle conversation stops --------------------------


async def _running(d: Desk, conversation: str) -> bool:
    pool = d.runtime.ref("desk/workers")
    assert isinstance(pool, gr.SupervisorRef)
    children = await pool.which_children()
    return any(c.id == conversation and c.status == "running" for c in children)


async def _forgotten(d: Desk, conversation: str) -> bool:
    pool = d.runtime.ref("desk/workers")
    assert isinstance(pool, gr.SupervisorRef)
    return all(c.id != conversation for c in await pool.which_children())


async def test_an_idle_conversation_worker_is_stopped_and_comes_back_with_its_state() -> None:
    async with desk(keyed=True, idle=0.0) as d:
        first = await d.ask("c1", "hi")
        await wait_until(lambda: _forgotten(d, "c1"))  # stopped, and its record dropped
        with pytest.raises(gr.ActorStopped):
            d.runtime.ref("desk/workers/c1")
        assert HOOKS.stops == ["desk/workers/c1"]
        # Change the stored state behind its back: only a worker that reads the store sees it.
        record = await d.store.get(CONVERSATIONS, "c1")
        assert record is not None
        extra = record.value.add(ChatMessage.user("from the store"))
        await d.store.write(CONVERSATIONS, "c1", extra, expected=record.version)
        answer = await d.ask("c1", "are you back?")
        saved = await d.store.get(CONVERSATIONS, "c1")
    assert isinstance(first, Answer)
    assert isinstance(answer, Answer)
    assert answer.worker == first.worker == "desk/workers/c1"
    assert HOOKS.starts[:2] == ["desk/workers/c1", "desk/workers/c1"]  # a new instance
    assert answer.text == "en: hello, message 5"  # system, hi, reply, from the store, are you back
    assert saved is not None
    assert saved.version == 3


async def test_messages_sent_while_a_worker_stops_are_held_in_order_for_the_next_one() -> None:
    async with desk(keyed=True, idle=0.0) as d:
        HOOKS.passivating, HOOKS.hold = anyio.Event(), anyio.Event()
        await d.ask("c1", "first")
        with anyio.fail_after(5):
            await HOOKS.passivating.wait()  # the router holds c1's messages from now on
        assert await _running(d, "c1")
        for n in range(3):
            await d.ref.tell(Request(conversation="c1", text=f"during {n}", user="ada"))
        HOOKS.hold.set()  # the old worker stops; a new one gets what was held
        answer = await d.ask("c1", "after")
        record = await d.store.get(CONVERSATIONS, "c1")
        letters = d.runtime.dead_letters.list()
    assert isinstance(answer, Answer)
    assert record is not None
    users = [m.content for m in record.value.messages if m.role == "user"]
    assert users == ["first", "during 0", "during 1", "during 2", "after"]
    assert HOOKS.stops[0] == "desk/workers/c1"
    assert HOOKS.starts.count("desk/workers/c1") >= 2
    assert letters == []  # nothing lost


async def test_a_worker_with_a_call_waiting_for_approval_is_not_passivated() -> None:
    async with desk(keyed=True, idle=0.0) as d:
        HOOKS.passivating = anyio.Event()
        parked = await d.ask("c1", "refund please")
        assert isinstance(parked, Answer)
        assert parked.status == "awaiting_approval"
        with anyio.fail_after(5):
            await HOOKS.passivating.wait()  # asked to stop; it refuses
        done = await d.resolve("c1", Approve(ticket=parked.ticket or "", by="lead"))
        assert await _running(d, "c1")
    assert isinstance(done, Answer)
    assert done.status == "replied"
    assert HOOKS.starts == ["desk/workers/c1"]  # the instance that parked the call resolved it


async def test_a_router_that_stops_fails_the_asks_it_holds() -> None:
    failures: list[BaseException] = []

    async def ask(d: Desk) -> None:
        try:
            await d.ask("c1", "held")
        except gr.GreenroomError as exc:
            failures.append(exc)

    async with desk(keyed=True, idle=0.0) as d:
        HOOKS.passivating, HOOKS.hold = anyio.Event(), anyio.Event()
        await d.ask("c1", "first")
        coordinator = d.runtime.ref("desk")
        assert isinstance(coordinator, gr.SupervisorRef)
        with anyio.fail_after(5):
            await HOOKS.passivating.wait()
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, d)

                async def router_took_it() -> bool:
                    children = await coordinator.which_children()
                    return d.runtime.statistics().pending_asks == 1 and all(
                        c.depth == 0 for c in children if c.id == "router"
                    )

                await wait_until(router_took_it)
                await coordinator.terminate_child("router")
        HOOKS.hold.set()
    assert len(failures) == 1
    assert isinstance(failures[0], gr.ActorStopped)
    assert failures[0].actor == "desk/router"


async def test_order_holds_and_nothing_is_lost_while_workers_keep_being_passivated() -> None:
    batches, per_batch, conversations = 4, 5, 6
    async with desk(keyed=True, idle=0.0) as d:
        for c in range(conversations):
            await d.ask(f"c{c}", "start")
        for batch in range(batches):
            HOOKS.passivating, HOOKS.hold = anyio.Event(), anyio.Event()
            with anyio.fail_after(5):
                await HOOKS.passivating.wait()  # workers are stopping, held at the gate
            for n in range(per_batch):
                for c in range(conversations):
                    text = f"{batch}.{n}"
                    await d.ref.tell(Request(conversation=f"c{c}", text=text, user="ada"))
                    await anyio.lowlevel.checkpoint()  # let the router and workers run
            HOOKS.hold.set()
        for c in range(conversations):
            assert isinstance(await d.ask(f"c{c}", "last"), Answer)
        records = [await d.store.get(CONVERSATIONS, f"c{c}") for c in range(conversations)]
        letters = d.runtime.dead_letters.list()
    assert letters == []
    sent = ["start", *(f"{b}.{n}" for b in range(batches) for n in range(per_batch)), "last"]
    for record in records:
        assert record is not None
        assert [m.content for m in record.value.messages if m.role == "user"] == sent
    assert len(HOOKS.stops) >= batches
