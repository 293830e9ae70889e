"""The mailbox layer's own runtime failures (the rest live in ``greenroom._errors``).

All derive from :class:`~greenroom.RuntimeFailure`::

    RuntimeFailure
    ├── MailboxUnavailable     the mailbox database failed (disk full, locked past the timeout)
    ├── UndecodableMessage     a stored body that does not decode into the actor's message types
    └── EnvelopeIdConflict     a stored entry repeats a held envelope's id with another body
"""

from __future__ import annotations

from greenroom._errors import RuntimeFailure

__all__ = ["EnvelopeIdConflict", "MailboxUnavailable", "UndecodableMessage"]


class MailboxUnavailable(RuntimeFailure):
    """The durable mailbox's backend (an sqlite file, a Redis server) could not do what was asked.

    ``path`` names the backend (a file path or a Redis URL), ``operation``
    what failed (``"open"``, ``"connect"``, ``"put"``, ``"commit"``) and
    ``reason`` the underlying error, which is chained as ``__cause__``.

    For a ``"put"`` to Redis it means *outcome unknown*: the connection
    failed while the write was on its way or its answer was awaited, and
    the entry may well have been added (an outage audit found 29 of 30 such
    puts written). For a sqlite ``"commit"`` the transaction was rolled
    back: the message is not on disk. Either way, re-send with the same
    idempotency key (``tell(msg, idempotency_key=...)``): a written first
    send makes the re-send a dropped duplicate, not a second message.
    """

    def __init__(self, path: str, operation: str, reason: str) -> None:
        remedy = (
            "check that the Redis server runs and is reachable"
            if path.startswith(("redis://", "rediss://", "unix://", "redis"))
            else "check the disk and that no other program holds the database locked"
        )
        super().__init__(f"the mailbox backend {path} failed to {operation}: {reason}; {remedy}")
        self.path = path
        self.operation = operation
        self.reason = reason


class UndecodableMessage(RuntimeFailure):
    """A stored message body is not valid msgpack of one of the actor's message types.

    Raised nowhere: it is recorded with the message in the dead-letter table,
    and the messages behind it are delivered.
    """

    def __init__(self, actor: str, detail: str) -> None:
        super().__init__(
            f"a message for {actor} cannot be decoded: {detail}; it was written by other "
            "code or corrupted on disk: inspect it with `greenroom dlq show`"
        )
        self.actor = actor
        self.detail = detail


class EnvelopeIdConflict(RuntimeFailure):
    """A stored entry repeats the id of an envelope the mailbox holds, with another body.

    Envelope ids are unique, so the producer of one of the two re-used an id
    (a foreign or broken producer; greenroom's own re-sends carry the same
    body and are dropped as duplicates). Raised nowhere: the later entry is
    recorded in the dead-letter stream, the one held is delivered. Redrive
    the letter once the held envelope is handled: before, it is deduped.
    """

    def __init__(self, actor: str, envelope_id: int, detail: str) -> None:
        super().__init__(
            f"an entry for {actor} repeats envelope id {envelope_id}, which the mailbox "
            f"holds {detail}; envelope ids must be unique: find the producer that re-used "
            "it, and inspect the entry with `greenroom dlq show`"
        )
        self.actor = actor
        self.envelope_id = envelope_id
        self.detail = detail
