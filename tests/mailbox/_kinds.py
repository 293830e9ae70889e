"""Every mailbox kind behind one fixture, for the guarantees of the Mailbox protocol.

``Harness`` hides the one difference the protocol allows: a memory mailbox
has a put message at once, a durable one after its commit, announced by the
listener. ``take`` waits (on the listener, never on a clock) for the next
message, and ``settle`` lets the durable writer finish what is queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import anyio.lowlevel

import greenroom as gr
from greenroom.mailbox import (
    Mailbox,
    MemoryMailbox,
    RedisMailboxes,
    SqliteMailboxes,
    make_envelope,
)
from tests._redis_server import redis_prefix, redis_url

KINDS = ("memory", "sqlite", "redis")


class Item(gr.Message):
    sender: int
    seq: int


def env(sender: int = 0, seq: int = 0) -> gr.Envelope:
    return make_envelope("box", Item(sender=sender, seq=seq))


class Harness:
    """One mailbox of one kind, and the means to wait for what it promises."""

    def __init__(
        self,
        kind: str,
        make: Callable[[int], Mailbox],
        boxes: SqliteMailboxes | RedisMailboxes | None = None,
    ) -> None:
        self.kind = kind
        self.boxes = boxes
        self._make = make
        self._arrived = anyio.Event()
        self.listens: list[int] = []

    def box(self, capacity: int) -> Mailbox:
        box = self._make(capacity)
        box.set_listener(self._on_arrival)
        self.current = box
        return box

    def _on_arrival(self) -> None:
        self.listens.append(1)
        self._arrived.set()

    async def take(self, box: Mailbox, timeout: float = 5.0) -> gr.Envelope:
        """The next message, waiting for it to arrive."""
        with anyio.fail_after(timeout):
            while True:
                got = box.get_nowait()
                if got is not None:
                    return got
                self._arrived = anyio.Event()
                await self._arrived.wait()

    async def settle(self, box: Mailbox) -> None:
        """Let a durable mailbox commit what is queued (a no-op in memory)."""
        if self.boxes is not None:
            await self.boxes.flush()
        await anyio.lowlevel.checkpoint()


@asynccontextmanager
async def harness(kind: str, tmp_path: Path) -> AsyncIterator[Harness]:
    async with AsyncExitStack() as stack:
        if kind == "memory":
            yield Harness(kind, lambda capacity: MemoryMailbox(capacity, label="box"))
            return
        boxes: SqliteMailboxes | RedisMailboxes
        if kind == "redis":
            boxes = await stack.enter_async_context(
                RedisMailboxes(redis_url(), prefix=redis_prefix())
            )
        else:
            boxes = await stack.enter_async_context(SqliteMailboxes(tmp_path / "boxes.db"))
        count = iter(range(1_000_000))
        yield Harness(
            kind,
            lambda capacity: boxes.create(
                f"box-{next(count)}", gr.MailboxConfig(capacity=capacity), (Item,)
            ),
            boxes,
        )
