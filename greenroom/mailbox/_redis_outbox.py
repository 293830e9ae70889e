"""The send-only side of RedisMailboxes: posting to a stream another process may consume.

An :class:`Outbox` stands in for a mailbox in the pump's put queue (the
pump only needs a name, keys, a bound and the bookkeeping hooks), so a post
rides the same pipelined write, dedupe and bound check as a local put.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from greenroom._errors import MessageTooLarge
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._sqlite_rows import encode_body

if TYPE_CHECKING:
    from greenroom.mailbox._redis_mailboxes import Keys, Pump

__all__ = ["Outbox", "claim_pending"]


class Outbox:
    """Posts to one actor's stream, whatever process hosts the actor."""

    __slots__ = ("capacity", "held", "keys", "max_bytes", "name", "pump")

    def __init__(self, name: str, capacity: int, pump: Pump, max_bytes: int | None) -> None:
        self.name = name
        self.capacity = capacity
        self.pump = pump
        self.max_bytes = max_bytes
        self.keys: Keys = pump.keys_of(name)
        self.held: set[int] = set()

    @property
    def wanted(self) -> bool:
        return False

    @wanted.setter
    def wanted(self, value: bool) -> None:
        # A post to an actor hosted here: have its mailbox read at once, not
        # on the next poll.
        box = self.pump.boxes.get(self.name)
        if box is not None and value:
            box.wanted = True

    def forget(self, count: int) -> None:
        """Nothing is counted here: the bound is the stream's, checked on the server."""

    async def post(self, envelope: Envelope) -> None:
        """Put ``envelope`` in the stream; returns once Redis has it.

        Raises:
            MessageTooLarge: the body is over ``max_bytes``.
            MailboxFull: the stream is at ``capacity``.
            MailboxUnavailable: Redis failed or is unreachable; the outcome is
                unknown (the entry may be in the stream): post the same
                envelope again, it is deduped by its id while unacked.
        """
        data = encode_body(envelope.body)
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise MessageTooLarge(type(envelope.body).__qualname__, len(data), self.max_bytes)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        op = self.pump.put(self, envelope, data, done)
        try:
            await done
        except asyncio.CancelledError:
            self.pump.withdraw(op)
            raise


async def claim_pending(pump: Pump, name: str) -> int:
    """XAUTOCLAIM every pending entry of ``name``'s stream to ``pump``'s consumer."""
    stream = pump.keys_of(name).stream
    client = pump.client
    try:
        await client.xgroup_create(stream, pump.group, id="0", mkstream=True)
    except Exception as error:  # BUSYGROUP: it exists
        if "BUSYGROUP" not in str(error):
            raise
    claimed = 0
    start: bytes | str = "0-0"
    while True:
        # Not JUSTID: redis-py then drops the cursor from the reply.
        reply = await client.xautoclaim(
            stream, pump.group, pump.consumer, 0, start_id=start, count=pump.batch
        )
        start = reply[0]
        claimed += len(reply[1])
        if start in (b"0-0", "0-0"):
            return claimed
