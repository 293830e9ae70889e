"""When the writer of a mailbox database stops: corruption found, or a close that ran out of time.

Which errors are which (``isolatable``, ``is_corruption``):

* ``SQLITE_CORRUPT`` and ``SQLITE_NOTADB`` (an ``sqlite3.DatabaseError``
  whose ``sqlite_errorcode`` says so): the file is damaged. Retrying cannot
  help and writing more could make it worse, so the writer stops for good:
  :meth:`Stop.corrupt` makes one :class:`MailboxCorrupted`, fails every
  mailbox of the database with it (pending and later puts, waiting
  senders; their buffered messages are dropped from memory, not handed
  out, as if the process had died) and the queued changes, and
  ``SqliteMailboxes`` raises it on exit.
* any other ``sqlite3.OperationalError`` (locked, disk full, I/O, interrupted):
  the database failed, the cycle is retried with backoff.
* everything else (``IntegrityError``, ``ProgrammingError``, ``DataError``,
  ``OverflowError`` or ``UnicodeEncodeError`` while binding a value, a bug):
  a fault of some rows, isolated by applying the cycle row by row.

Closing waits for the writer to drain for at most ``close_timeout``; then
:meth:`Stop.abandon` interrupts the statement in flight and ends the
writer, which counts what it could not write (:meth:`Stop.incomplete`).
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING

import aiosqlite
import anyio

from greenroom._errors import MailboxClosed
from greenroom.mailbox._errors import MailboxCloseIncomplete, MailboxCorrupted, MailboxUnavailable
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.mailbox._sqlite_slot import Slot
    from greenroom.mailbox._sqlite_writer import Writer

__all__ = ["Stop", "corrupted", "is_corruption", "isolatable"]

_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def is_corruption(error: BaseException) -> bool:
    """Whether ``error`` is sqlite saying the file is damaged (any extended CORRUPT code too)."""
    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def isolatable(error: BaseException) -> bool:
    """Whether ``error`` is a fault of some rows (retry row by row), not of the database."""
    return not isinstance(error, sqlite3.OperationalError) and not is_corruption(error)


def corrupted(path: str, error: BaseException) -> MailboxCorrupted:
    """The :class:`MailboxCorrupted` of ``error`` (chained)."""
    name = getattr(error, "sqlite_errorname", None)
    failure = MailboxCorrupted(
        path, str(error), name if isinstance(name, str) else "SQLITE_CORRUPT"
    )
    failure.__cause__ = error
    return failure


class Stop:
    """Why and how a writer stopped early, and what it left unwritten."""

    def __init__(self, name: str, path: str, slots: dict[str, Slot]) -> None:
        self.name = name
        self.path = path
        self._slots = slots
        self.failure: MailboxCorrupted | None = None
        self.abandoned = False
        self.timeout = 0.0
        self.last_error: Exception | None = None
        self.leases_released = False
        self.unwritten = (0, 0, 0, 0, 0)  # puts, acks, attempts, releases, letters
        self.ended = anyio.Event()
        self._halt = anyio.Event()

    @property
    def stopped(self) -> bool:
        """Whether the writer must not start another cycle."""
        return self.failure is not None or self.abandoned

    async def pause(self, delay: float) -> None:
        """Back off for ``delay`` seconds, or less if the writer is stopped meanwhile."""
        with anyio.move_on_after(delay):
            await self._halt.wait()

    def corrupt(self, error: BaseException) -> bool:
        """If ``error`` says the file is corrupt: stop, fail every mailbox; whether it did."""
        if not is_corruption(error):
            return False
        if self.failure is not None:
            return True
        failure = self.failure = corrupted(self.path, error)
        logger.bind(event="mailbox_corrupted", path=self.path).opt(exception=error).error(
            "{name}: the database is corrupt ({error}); every mailbox of it fails with "
            "MailboxCorrupted and nothing more is written: recover the committed rows with "
            "`sqlite3 {path} .recover`",
            name=self.name,
            error=error,
            path=self.path,
        )
        for slot in list(self._slots.values()):
            box = slot.mailbox
            if box is not None:
                box._fail(failure)
        self._halt.set()
        return True

    async def abandon(self, db: aiosqlite.Connection | None, timeout: float) -> None:
        """The close deadline passed: interrupt the statement in flight, stop after it.

        aiosqlite's ``interrupt`` calls sqlite3's at once (it is thread-safe),
        not behind the statement it interrupts.
        """
        self.abandoned = True
        self.timeout = timeout
        self._halt.set()
        if db is not None:
            with contextlib.suppress(ValueError, sqlite3.Error):  # closed already
                await db.interrupt()

    def put_error(self, actor: str) -> Exception:
        """What a put still queued when the writer ended fails with."""
        if self.failure is not None:
            return self.failure
        if self.abandoned:
            return MailboxUnavailable(
                self.path,
                "commit",
                f"the database was closed before the message was written "
                f"(close_timeout={self.timeout:g} s passed; last error: {self.last_error})",
            )
        return MailboxClosed(actor)

    def count_unwritten(self, writer: Writer) -> None:
        self.unwritten = (
            sum(len(chunk.items) for chunk in writer.chunks),
            len(writer.acks),
            len(writer.attempts),
            len(writer.releases),
            len(writer.letters),
        )

    def incomplete(self) -> MailboxCloseIncomplete | None:
        """The error of a close that gave up with changes unwritten, or ``None``."""
        if not self.abandoned:
            return None
        puts, acks, attempts, releases, letters = self.unwritten
        error = MailboxCloseIncomplete(
            self.path,
            str(self.last_error) if self.last_error is not None else "no commit failed",
            timeout=self.timeout,
            puts=puts,
            acks=acks,
            attempts=attempts,
            releases=releases,
            letters=letters,
            leases_released=self.leases_released,
        )
        error.__cause__ = self.last_error
        return error
