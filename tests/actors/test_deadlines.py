"""The one timeout mechanism: a wheel of millisecond slots (actors/_deadlines.py)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.actors._deadlines import Deadlines


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=20))
def test_a_deadline_fails_its_future_not_before_it_is_due_and_at_most_a_slot_late(
    delays_ms: list[int],
) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        started = loop.time()
        fired: dict[int, float] = {}
        futures = []
        for i, delay in enumerate(delays_ms):
            future: asyncio.Future[None] = loop.create_future()
            future.add_done_callback(lambda _, i=i: fired.__setitem__(i, loop.time()))
            deadlines.add(future, delay / 1000, "a", "Ping")
            futures.append(future)
        await asyncio.wait(futures, timeout=5)
        for i, delay in enumerate(delays_ms):
            assert fired[i] - started >= delay / 1000 - 1e-6
            with pytest.raises(gr.AskTimeout):
                futures[i].result()
        assert len(deadlines) == 0

    asyncio.run(main())


def test_a_settled_deadline_never_fires() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        deadlines = Deadlines(loop)
        answered: asyncio.Future[int] = loop.create_future()
        waiting: asyncio.Future[int] = loop.create_future()
        slot = deadlines.add(answered, 0.01, "a", "Ping")
        deadlines.add(waiting, 0.01, "a", "Ping")
        answered.set_result(1)
        deadlines.settle(slot, answered)
        await asyncio.wait({waiting}, timeout=5)
        assert answered.result() == 1
        assert isinstance(waiting.exception(), gr.AskTimeout)

    asyncio.run(main())
