"""Senders waiting for room in a bounded durable mailbox, let in in arrival order."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

__all__ = ["WaitingSenders"]


class WaitingSenders:
    """The queue of ``put`` calls waiting for room, shared by the durable mailboxes.

    ``has_room()`` says whether the mailbox can take one more message now.
    A sender let in (``wake``) that is cancelled before it uses its turn
    passes the turn on, so no room is lost and no later sender barges ahead.
    """

    __slots__ = ("_has_room", "_waiters")

    def __init__(self, has_room: Callable[[], bool]) -> None:
        self._has_room = has_room
        self._waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._waiters)

    async def wait(self) -> None:
        """Wait until this sender's turn (raises what :meth:`fail` set, if anything)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.wake()  # we were let in but leave: let the next one in
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def wake(self) -> None:
        """Let the next waiting sender in, if there is room."""
        waiters = self._waiters
        while waiters and self._has_room():
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def fail(self, error: BaseException) -> None:
        """Fail every waiting sender with ``error`` (the mailbox closed)."""
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(error)
        self._waiters.clear()
