"""Deadlines: the one timeout mechanism of the runtime, a wheel of millisecond slots.

Every ask and every call into a supervisor has a deadline. A loop timer per
call costs about 2 µs (cancelled timers stay in the loop's heap), a third of
an ask. Instead, deadlines in the same millisecond share one slot and one loop
timer: adding is a dict insert, settling a dict pop, and a timeout fires at
most 1 ms late. Replies never look here.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from greenroom._errors import AskTimeout

__all__ = ["Deadlines", "Slot"]

Slot = dict["asyncio.Future[Any]", tuple[str, "str | type", float]]
"""The calls due in one millisecond: future -> (actor, message type or a word, timeout)."""


class Deadlines:
    """Fails a future with :class:`AskTimeout` at its deadline unless it is settled first."""

    __slots__ = ("_loop", "_now", "_slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: dict[int, Slot] = {}
        # asyncio's own loops tell time with time.monotonic: call it directly
        # (a frame less on every ask); any other loop is asked for its time.
        own = type(loop).time is asyncio.BaseEventLoop.time
        self._now: Callable[[], float] = time.monotonic if own else loop.time

    def add(
        self, future: asyncio.Future[Any], timeout: float, actor: str, what: str | type
    ) -> Slot:
        """Fail ``future`` in ``timeout`` seconds; the slot to :meth:`settle` it from.

        ``actor`` and ``what`` (an ask's message type, or a word) name it in the
        :class:`AskTimeout`.
        """
        key = math.ceil((self._now() + timeout) * 1000)
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = {}
            self._loop.call_at(key / 1000, self._fire, key)
        slot[future] = (actor, what, timeout)
        return slot

    @staticmethod
    def settle(slot: Slot, future: asyncio.Future[Any]) -> None:
        """``future`` no longer needs its deadline (answered, failed or given up)."""
        slot.pop(future, None)

    def _fire(self, key: int) -> None:
        slot = self._slots.pop(key, None)
        if not slot:
            return
        for future, (actor, what, timeout) in slot.items():
            if not future.done():
                name = what if isinstance(what, str) else what.__qualname__
                future.set_exception(AskTimeout(actor, name, timeout))

    def __len__(self) -> int:
        return sum(map(len, self._slots.values()))

    def asks(self) -> int:
        """Asks waiting for their reply (calls into supervisors not counted)."""
        return sum(
            not isinstance(what, str)
            for slot in self._slots.values()
            for _, what, _ in slot.values()
        )
