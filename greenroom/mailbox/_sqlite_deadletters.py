"""SqliteDeadLetters: the durable dead-letter table, as a sink and for inspection."""

from __future__ import annotations

import builtins
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from greenroom.mailbox._deadletter import DeadLetter, DeadLetterReason
from greenroom.mailbox._errors import MailboxUnavailable
from greenroom.mailbox._sqlite_admin import (
    SELECT_LETTERS,
    DeadLetterRecord,
    LetterFilter,
    RedriveOutcome,
    get_letter,
    open_mailbox_database,
    purge_letters,
    query_letters,
    record_from_row,
    redrive_letters,
)
from greenroom.mailbox._sqlite_failure import corrupted, is_corruption
from greenroom.mailbox._sqlite_rows import letter_row
from greenroom.mailbox._sqlite_schema import (
    INSERT_LETTER,
)
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.mailbox._sqlite_writer import Writer

__all__ = ["SqliteDeadLetters"]

Runner = Callable[[Callable[[aiosqlite.Connection], Any]], Any]


class SqliteDeadLetters:
    """The dead-letter table of a mailbox database.

    Two ways to get one: ``boxes.dead_letters`` of an open
    :class:`SqliteMailboxes` (pass it as ``Runtime(dead_letters=...)``; its
    operations run on the mailboxes' writer, and a redriven message is
    delivered by this process at once), or ``async with
    SqliteDeadLetters.open(path) as letters:`` from another process (the
    ``greenroom dlq`` command); a running owner of the database picks a
    redriven message up within its ``poll`` interval.

    :meth:`add` is the :class:`DeadLetterSink` side: it never blocks and
    never raises; the letter is written by the next group commit (with the
    ack of its message, when the runtime dead-letters a failed message, so
    the message moves from mailbox to letters atomically).
    """

    def __init__(self, path: str, writer: Writer | None, db: aiosqlite.Connection | None) -> None:
        self._path = path
        self._writer = writer
        self._db = db
        self._pending: builtins.list[tuple[Any, ...]] = []
        self.dropped = 0

    def __repr__(self) -> str:
        return f"SqliteDeadLetters({self._path!r})"

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, path: str | os.PathLike[str], *, busy_timeout: float = 5.0, read_only: bool = False
    ) -> AsyncIterator[SqliteDeadLetters]:
        """The dead letters of an existing mailbox database, on a connection of their own.

        ``read_only`` opens the file read-only (``greenroom dlq list`` and
        ``show``): redrive and purge then fail with :class:`MailboxUnavailable`.
        The file is never created.

        Raises:
            UsageError: ``path`` is not a file, not an SQLite file, or holds no
                greenroom mailbox schema.
            MailboxUnavailable: the database cannot be opened or read, or its
                schema is newer than this greenroom knows.
        """
        name = os.fspath(path)
        async with open_mailbox_database(
            name, busy_timeout=busy_timeout, read_only=read_only
        ) as db:
            try:
                letters = cls(name, None, db)
                yield letters
                await letters._flush()
            except sqlite3.Error as error:
                if is_corruption(error):
                    raise corrupted(name, error) from error
                raise MailboxUnavailable(name, "read", str(error)) from error

    # -- the sink --------------------------------------------------------------

    def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``: it is written by the next commit. Never blocks, never raises.

        A letter added after the database was closed cannot be kept: it is
        logged and counted in :attr:`dropped`.
        """
        try:
            row = letter_row(letter)
        except Exception as exc:  # never raise into the runtime
            self._drop(letter, exc)
            return
        writer = self._writer
        if writer is not None:
            if writer.closed or writer.stop.stopped:
                self._drop(letter, writer.stop.failure)
                return
            writer.letters.append(row)
            writer.wake()
        else:
            self._pending.append(row)

    def _drop(self, letter: DeadLetter, error: Exception | None) -> None:
        self.dropped += 1
        logger.bind(actor=letter.actor, event="dead_letter_dropped").error(
            "{path}: a dead letter for {actor} could not be kept ({error})",
            path=self._path,
            actor=letter.actor,
            error=error or "the database is closed",
        )

    def list(
        self,
        *,
        actor: str | None = None,
        reason: DeadLetterReason | None = None,
        since: float | None = None,
    ) -> builtins.list[DeadLetter]:
        """The committed letters, oldest first, filtered; blocks for one read.

        For tests and scripts (it is the :class:`DeadLetterSink` method); in
        async code use :meth:`query`, which does not block the event loop.
        Letters added but not yet committed are not included.

        Raises:
            MailboxUnavailable: the file cannot be read (:class:`MailboxCorrupted`:
                it is corrupt).
        """
        clause, params = LetterFilter(actor=actor, reason=reason, since=since).where()
        try:
            with contextlib.closing(sqlite3.connect(self._path, timeout=5.0)) as db:
                rows = db.execute(f"{SELECT_LETTERS}{clause} ORDER BY letter_id", params).fetchall()
        except sqlite3.Error as error:
            if is_corruption(error):
                raise corrupted(self._path, error) from error
            raise MailboxUnavailable(self._path, "read dead letters", str(error)) from error
        return [record_from_row(row).letter for row in rows]

    # -- inspection and repair (async) -----------------------------------------

    async def _run(self, fn: Callable[[aiosqlite.Connection], Any]) -> Any:
        writer = self._writer
        try:
            if writer is not None:
                return await writer.run_admin(fn)
            assert self._db is not None
            await self._flush()
            return await fn(self._db)
        except sqlite3.Error as error:
            if is_corruption(error):
                raise corrupted(self._path, error) from error
            raise MailboxUnavailable(
                self._path, "read or write dead letters", str(error)
            ) from error

    async def _flush(self) -> None:
        if self._pending and self._db is not None:
            rows, self._pending = self._pending, []
            await self._db.executemany(INSERT_LETTER, rows)
            await self._db.commit()

    async def query(
        self,
        *,
        actor: str | None = None,
        reason: str | None = None,
        error_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> builtins.list[DeadLetterRecord]:
        """The letters that match every given filter, oldest first (at most ``limit``).

        ``error_type`` is the error's qualified name as stored (``"ValueError"``,
        ``"greenroom.UnknownMessage"``); times are seconds since the epoch.

        Raises:
            MailboxUnavailable: the database failed (:class:`MailboxCorrupted`: it is corrupt).
            MailboxClosed: the :class:`SqliteMailboxes` it belongs to was closed.
        """
        where = LetterFilter(
            actor=actor, reason=reason, error_type=error_type, since=since, until=until
        )
        records: builtins.list[DeadLetterRecord] = await self._run(
            lambda db: query_letters(db, where, limit)
        )
        return records

    async def get(self, letter_id: int) -> DeadLetterRecord | None:
        """The letter numbered ``letter_id``, or ``None`` if there is none.

        Raises:
            MailboxUnavailable: the database failed (:class:`MailboxCorrupted`: it is corrupt).
            MailboxClosed: the :class:`SqliteMailboxes` it belongs to was closed.
        """
        record: DeadLetterRecord | None = await self._run(lambda db: get_letter(db, letter_id))
        return record

    async def redrive(self, letter_ids: Sequence[int]) -> builtins.list[RedriveOutcome]:
        """Put the letters' envelopes back into their actors' mailboxes, in one transaction.

        Each keeps its envelope id and trace id, starts again at ``attempt``
        1, and goes to the back of its actor's queue; its letter is removed.

        Raises:
            MailboxUnavailable: the database failed (:class:`MailboxCorrupted`: it is corrupt).
            MailboxClosed: the :class:`SqliteMailboxes` it belongs to was closed.
        """
        ids = list(letter_ids)
        outcomes: builtins.list[RedriveOutcome] = await self._run(
            lambda db: redrive_letters(db, ids)
        )
        writer = self._writer
        if writer is not None:
            added: dict[str, int] = {}
            for outcome in outcomes:
                if outcome.status == "redriven" and outcome.actor is not None:
                    added[outcome.actor] = added.get(outcome.actor, 0) + 1
            for actor, count in added.items():
                writer.mark_loose(actor, count)
        return outcomes

    async def purge(
        self,
        letter_ids: Sequence[int] | None = None,
        *,
        actor: str | None = None,
        reason: str | None = None,
        error_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Delete the letters that match (by number, or by filters); how many were deleted.

        With neither numbers nor filters, every letter is deleted.

        Raises:
            MailboxUnavailable: the database failed (:class:`MailboxCorrupted`: it is corrupt).
            MailboxClosed: the :class:`SqliteMailboxes` it belongs to was closed.
        """
        where = LetterFilter(
            actor=actor,
            reason=reason,
            error_type=error_type,
            since=since,
            until=until,
            ids=None if letter_ids is None else tuple(letter_ids),
        )
        count: int = await self._run(lambda db: purge_letters(db, where))
        return count
