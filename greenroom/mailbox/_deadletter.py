"""Dead letters: messages that could not be handled, kept with their error."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Literal, Protocol

import msgspec

from greenroom._errors import ErrorInfo
from greenroom.mailbox._envelope import Envelope

__all__ = ["DeadLetter", "DeadLetterReason", "DeadLetterSink", "MemoryDeadLetters"]

DeadLetterReason = Literal[
    "handler_failed",
    "unknown_message",
    "invalid_message",
    "too_large",
    "mailbox_full",
    "actor_stopped",
    "undeliverable",
]


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """A message that was not handled, and why.

    Attributes:
        envelope: the message as it was last delivered (``attempt`` tells how often).
        actor: the actor it was meant for.
        reason: what kind of failure it was.
        error: the error, as plain data (type, text, traceback where there was one).
        at: wall-clock time it was dead-lettered.
    """

    envelope: Envelope
    actor: str
    reason: DeadLetterReason
    error: ErrorInfo
    at: float = msgspec.field(default_factory=time.time)


class DeadLetterSink(Protocol):
    """Where dead letters go. ``add`` never blocks and never raises."""

    def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``."""
        ...

    def list(
        self,
        *,
        actor: str | None = None,
        reason: DeadLetterReason | None = None,
        since: float | None = None,
    ) -> list[DeadLetter]:
        """The kept letters, oldest first, filtered by actor, reason and time."""
        ...


class MemoryDeadLetters:
    """The in-memory dead-letter sink: the newest ``capacity`` letters.

    Past the capacity the oldest letters are dropped and counted in
    :attr:`dropped` (and logged by the runtime as they arrive), so memory
    stays bounded. The durable sink comes with the sqlite mailbox.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._letters: deque[DeadLetter] = deque(maxlen=capacity)
        self.capacity = capacity
        self.dropped = 0
        self.total = 0

    def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``, dropping the oldest one when full."""
        if len(self._letters) == self.capacity:
            self.dropped += 1
        self._letters.append(letter)
        self.total += 1

    def list(
        self,
        *,
        actor: str | None = None,
        reason: DeadLetterReason | None = None,
        since: float | None = None,
    ) -> list[DeadLetter]:
        """The kept letters, oldest first, filtered by actor, reason and time."""
        return [
            dl
            for dl in self._letters
            if (actor is None or dl.actor == actor)
            and (reason is None or dl.reason == reason)
            and (since is None or dl.at >= since)
        ]

    def __len__(self) -> int:
        return len(self._letters)

    def __iter__(self) -> Iterator[DeadLetter]:
        return iter(tuple(self._letters))
