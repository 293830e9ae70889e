"""The mailbox layer's own runtime failures (the rest live in ``greenroom._errors``).

All derive from :class:`~greenroom.RuntimeFailure`::

    RuntimeFailure
    ├── MailboxUnavailable         the mailbox database failed (disk full, locked past the timeout)
    │   ├── MailboxCorrupted       sqlite found the file corrupt: greenroom stopped using it
    │   └── MailboxCloseIncomplete closing ran past its deadline with changes not written
    ├── UndecodableMessage         a stored message that does not decode into the actor's types
    └── EnvelopeIdConflict         a stored entry repeats a held envelope's id with another body
"""

from __future__ import annotations

from greenroom._errors import NotRetryable, RuntimeFailure

__all__ = [
    "EnvelopeIdConflict",
    "MailboxCloseIncomplete",
    "MailboxCorrupted",
    "MailboxUnavailable",
    "UndecodableMessage",
]


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


class MailboxCorrupted(MailboxUnavailable, NotRetryable):
    """sqlite reported the mailbox database corrupt (``SQLITE_CORRUPT`` or ``SQLITE_NOTADB``).

    Raised to every user of the database from the moment it is found
    (pending and later puts, asks, waiting senders, dead-letter queries)
    and by leaving ``async with SqliteMailboxes``: greenroom writes nothing
    more to the file. ``detail`` is sqlite's message, ``code`` its error name
    (``"SQLITE_CORRUPT"``, ``"SQLITE_NOTADB"``, ...). What can be recovered,
    and how, is in the docstring of :class:`~greenroom.mailbox.SqliteMailboxes`.
    """

    def __init__(self, path: str, detail: str, code: str = "SQLITE_CORRUPT") -> None:
        RuntimeFailure.__init__(
            self,
            f"the mailbox database {path} is corrupt ({code}: {detail}); greenroom stopped "
            "using it. Stop the process, keep a copy of the file (with its -wal), and recover "
            f"the committed rows with `sqlite3 {path} .recover | sqlite3 NEW.db`, then start "
            "on NEW.db",
        )
        self.path = path
        self.operation = "read or write"
        self.reason = detail
        self.detail = detail
        self.code = code


class MailboxCloseIncomplete(MailboxUnavailable):
    """Closing a mailbox database ran past its ``close_timeout`` with changes still unwritten.

    What was committed before stays. The counts say what was not written,
    and what each means for the next process on the file:

    * ``puts``: messages queued fire-and-forget (``offer``, ``tell_nowait``,
      timers) and never committed, lost (a sender awaiting ``put`` got
      :class:`MailboxUnavailable` instead);
    * ``acks``: handled messages whose delete was not written: delivered again;
    * ``attempts``: retries whose attempt count was not saved;
    * ``releases``: leases not given back, and ``leases_released`` is
      ``False`` when this holder's leases were not freed at all: the next
      process takes them back (at once on the same host, else after ``lease``);
    * ``letters``: dead letters not written, lost (logged when they were added).

    ``reason`` is the error of the last failed commit.
    """

    def __init__(
        self,
        path: str,
        reason: str,
        *,
        timeout: float,
        puts: int,
        acks: int,
        attempts: int,
        releases: int,
        letters: int,
        leases_released: bool,
    ) -> None:
        RuntimeFailure.__init__(
            self,
            f"closing the mailbox database {path} took longer than close_timeout={timeout:g} s "
            f"while commits failed ({reason}); not written: {puts} put(s) (lost), {acks} ack(s) "
            f"(delivered again), {attempts} attempt count(s), {releases} lease release(s), "
            f"{letters} dead letter(s) (lost)"
            + ("" if leases_released else "; this process's leases were not freed")
            + "; everything committed before is kept. Free disk space (or fix the error) "
            "before the next start",
        )
        self.path = path
        self.operation = "close"
        self.reason = reason
        self.timeout = timeout
        self.puts = puts
        self.acks = acks
        self.attempts = attempts
        self.releases = releases
        self.letters = letters
        self.leases_released = leases_released


class UndecodableMessage(RuntimeFailure):
    """A stored message cannot be delivered as it is: its body is not valid msgpack of one
    of the actor's message types, or a column of its row holds a value of the wrong type
    or out of range (text that is not UTF-8, an id that is not an integer).

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
