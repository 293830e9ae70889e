"""Idle conversations leave the worker's memory and come back from the store."""

from __future__ import annotations

import anyio
import msgspec
import pytest

from greenroom.agent import Answer
from greenroom.decide import ChatMessage
from tests.agent import _kit
from tests.agent._kit import CONVERSATIONS, desk, worker_spec

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
