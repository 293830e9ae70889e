"""What the writer keeps per actor (Slot) and per batch of puts (Chunk)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from greenroom.mailbox._envelope import Envelope

if TYPE_CHECKING:
    from greenroom.mailbox._sqlite_mailbox import SqliteMailbox

__all__ = ["Chunk", "Item", "Slot"]

Item = tuple["SqliteMailbox", Envelope, bytes, "asyncio.Future[None] | None"]
"""One queued put: its mailbox, envelope, encoded body and the future its sender awaits."""


class Slot:
    """What this process knows of one actor's rows, across its mailbox's incarnations.

    ``count``: unacked rows (on disk or queued), which ``capacity`` bounds.
    ``loose``: free rows of the actor may be on disk, so new messages go
    behind them (inserted free, fetched in order) instead of straight into
    the buffer; ``gen`` counts how often it became loose.
    """

    __slots__ = ("actor", "count", "gen", "loose", "mailbox")

    def __init__(self, actor: str, count: int = 0, loose: bool = False) -> None:
        self.actor = actor
        self.count = count
        self.loose = loose
        self.gen = 0
        self.mailbox: SqliteMailbox | None = None

    def make_loose(self) -> None:
        self.loose = True
        self.gen += 1


class Chunk:
    """Puts that go into one transaction (at most ``batch``)."""

    __slots__ = ("items", "taken")

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.taken = False
