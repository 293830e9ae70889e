"""The reply futures of local asks, kept beside a mailbox that stores envelopes as bytes."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from greenroom.mailbox._envelope import Envelope

__all__ = ["LocalReplies"]


class LocalReplies:
    """Where a durable mailbox keeps ``Envelope.reply`` while the envelope is only bytes.

    An ask's reply future travels in its envelope; a mailbox that hands out
    envelopes decoded from its store (a fetched sqlite row, a Redis stream
    entry) puts the future back on the way out, so the handler's reply
    reaches the asker waiting in this process. A future leaves when it is
    done (answered or timed out), so nothing here outlives its ask.
    """

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[Any]] = {}

    def keep(self, envelope: Envelope) -> None:
        """Remember ``envelope``'s reply future, if it has one, by envelope id.

        A re-ask of an envelope id the store holds already (a keyed ask
        re-sent from a new process) is kept too: the stored copy's reply
        then reaches it.
        """
        future = envelope.reply
        if future is None or future.done():
            return
        kept = self._futures.get(envelope.id)
        if kept is not None and not kept.done():
            return  # the first asker's; a re-ask of the id joins it through the cell
        self._futures[envelope.id] = future
        future.add_done_callback(functools.partial(self._forget, envelope.id))

    def restore(self, envelope: Envelope) -> None:
        """Put the kept future back on a decoded ``envelope`` that lost it."""
        if envelope.reply is None and self._futures:
            future = self._futures.get(envelope.id)
            if future is not None and not future.done():  # a done one is forgotten soon
                envelope.reply = future

    def __len__(self) -> int:
        """Futures kept: asks through this mailbox still waiting for their reply."""
        return len(self._futures)

    def _forget(self, envelope_id: int, future: object) -> None:
        if self._futures.get(envelope_id) is future:
            del self._futures[envelope_id]
