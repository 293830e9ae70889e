"""SqliteMailboxes: the factory of durable mailboxes, all in one sqlite file.

What holds at the edges (the details are in the docstrings of the modules named):

* Poison: a stored row that cannot be delivered as it is (an undecodable
  body, text that is not UTF-8, an id or attempt of the wrong type or out of
  range) becomes a dead letter with a typed error, and the rows behind it
  are delivered (``_sqlite_rows``). A change that sqlite cannot store (a
  value it cannot bind, a constraint) is refused alone; the writer never
  dies of one bad item (``_sqlite_writer``).
* A full disk (or any failing commit): puts fail with
  :class:`MailboxUnavailable`, the rest is retried. Leaving the block waits
  at most ``close_timeout`` for what is queued, then gives up and raises
  :class:`MailboxCloseIncomplete` with the counts of what was not written.
* Corruption: see :class:`SqliteMailboxes`, "When the file is corrupt".
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from types import TracebackType
from typing import Literal, Self

import aiosqlite
import anyio
import anyio.abc
import msgspec

from greenroom._errors import MailboxClosed, UsageError
from greenroom.mailbox._config import MailboxConfig
from greenroom.mailbox._errors import MailboxCorrupted, MailboxUnavailable
from greenroom.mailbox._sqlite_apply import letter_strays
from greenroom.mailbox._sqlite_columns import decode_text
from greenroom.mailbox._sqlite_deadletters import SqliteDeadLetters
from greenroom.mailbox._sqlite_failure import corrupted, is_corruption
from greenroom.mailbox._sqlite_leases import Leases
from greenroom.mailbox._sqlite_mailbox import SqliteMailbox
from greenroom.mailbox._sqlite_rows import BodyDecoder
from greenroom.mailbox._sqlite_schema import SchemaTooNew, migrate
from greenroom.mailbox._sqlite_slot import Slot
from greenroom.mailbox._sqlite_writer import Writer
from greenroom.trace._logging import logger

__all__ = ["SqliteMailboxes", "SqliteMailboxesStatistics"]

_Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


class SqliteMailboxesStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`SqliteMailboxes` since it was opened.

    ``commits``: transactions committed; ``rows``: puts and acks in them;
    ``largest_batch``: the most puts and acks in one; ``reclaimed``: rows
    taken back from dead holders (each delivered again).
    """

    commits: int
    rows: int
    largest_batch: int
    reclaimed: int


class SqliteMailboxes:
    """Durable, at-least-once mailboxes for many actors in one sqlite file.

    Use as ``async with SqliteMailboxes(path) as boxes:`` around the runtime,
    and give it a kind name::

        async with SqliteMailboxes("app.db") as boxes:
            async with Runtime(mailboxes={"durable": boxes},
                               dead_letters=boxes.dead_letters) as rt:
                await rt.spawn(Worker, mailbox=MailboxConfig(kind="durable"))

    It opens one aiosqlite connection (WAL), migrates the schema, and runs
    in a task group of its own the writer, which applies every change of
    every mailbox in group commits (see :class:`SqliteMailbox` for the
    guarantees), and a ticker that renews this process's leases and frees
    the rows of dead holders every ``poll`` seconds (see ``_sqlite_leases``
    for the rule). Leaving the block commits what is queued, frees this
    process's leases and closes the file; the messages stay for the next
    process. It waits for that at most ``close_timeout`` seconds (commits
    that keep failing, as on a full disk, would otherwise keep it forever):
    then it stops, keeps what was committed and raises
    :class:`MailboxCloseIncomplete`, which counts the puts, acks, attempts,
    lease releases and dead letters not written (only logged when the
    block is left with an exception of its own, which then propagates).
    Open and close it in the same task, and close the runtime first.

    When the file is corrupt: sqlite reports a damaged page
    (``SQLITE_CORRUPT``) or a file that is not a database
    (``SQLITE_NOTADB``) only when it reads that page, so corruption is found
    on open or while running, when a fetch, put, ack or dead-letter query
    touches it. From then on greenroom writes nothing more to the file and
    retries nothing: every mailbox of it fails with :class:`MailboxCorrupted`
    (the puts queued and later ones, waiting senders, hence ``tell`` and
    ``ask``; ``dead_letters`` queries; ``create``), messages buffered in
    memory are dropped unhandled (they stay on disk, unacked, as after a
    kill), an ``ask`` whose message was committed but not yet handled fails
    at its timeout, and leaving the block raises the :class:`MailboxCorrupted`
    (see :attr:`failure`). A corrupt file found on open raises it from
    ``async with``.

    What can be recovered: every committed row on an intact page (messages,
    dead letters), with the sqlite3 command line tool, after stopping the
    process and copying the file with its ``-wal``:
    ``sqlite3 app.db .recover | sqlite3 new.db``, then start on ``new.db``;
    the rows come back free or leased to a dead holder, and are delivered
    again. (``.recover`` needs a sqlite3 built with the ``sqlite_dbpage``
    table, as the official builds are; ``.dump`` gets the rows up to the
    first damaged page.) What is lost: the rows on the damaged pages, and
    the changes not committed when the corruption was found (so handled
    messages whose acks were not written are delivered again after the
    recovery: at-least-once still holds).

    Options (times in seconds):
        lease: how long a holder's heartbeat is valid (default 30.0). A
            process that stops without closing, on another host or with
            its pid reused, loses its rows to the others after this long; on
            the same host a dead pid loses them at once.
        batch: the most puts in one transaction, and the page size of
            fetches (default 256).
        poll: how often leases are renewed and the file is checked for
            free rows from elsewhere, such as a ``greenroom dlq redrive``
            (default 1.0).
        max_message_bytes: the largest stored body (default 1 MiB); a larger
            one is refused on put, and dead-lettered when read back.
        synchronous: sqlite's ``synchronous``: ``"NORMAL"`` (default)
            survives the process being killed; ``"FULL"`` also power loss.
        busy_timeout: how long to wait for another connection's write lock.
        close_timeout: the longest leaving the block waits for queued changes
            to commit (default 10.0); ``None`` waits as long as it takes.
        dedupe_window: how long the id of an acked tell sent with an
            idempotency key is remembered (default 3600.0). The dedupe
            window of a keyed tell is from its put until this long after
            its ack (checked to within ``poll``): a re-send in it is
            dropped; a later one is delivered again (the side-effect
            ledger, keyed by the same causation, still answers its steps).
            Other envelope ids are deduped while they are unacked.

    Raises :class:`UsageError` for bad options; on open
    :class:`MailboxUnavailable` when the file cannot be opened or its schema
    is newer than this greenroom, :class:`MailboxCorrupted` when it is
    corrupt; on close :class:`MailboxCorrupted` when corruption was found
    while it ran, :class:`MailboxCloseIncomplete` when ``close_timeout``
    passed with changes unwritten.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        lease: float = 30.0,
        batch: int = 256,
        poll: float = 1.0,
        max_message_bytes: int | None = 1_048_576,
        synchronous: _Synchronous = "NORMAL",
        busy_timeout: float = 5.0,
        close_timeout: float | None = 10.0,
        dedupe_window: float = 3600.0,
    ) -> None:
        name = os.fspath(path)
        if name in ("", ":memory:") or name.startswith("file::memory:"):
            raise UsageError("SqliteMailboxes needs a file path; use the memory mailbox for memory")
        if not lease > 0 or not poll > 0 or poll >= lease:
            raise UsageError(f"need 0 < poll < lease, got poll={poll!r}, lease={lease!r}")
        if type(batch) is not int or not 1 <= batch <= 4096:
            raise UsageError(f"batch must be an int from 1 to 4096, got {batch!r}")
        if max_message_bytes is not None and max_message_bytes < 1:
            raise UsageError(f"max_message_bytes must be >= 1 or None, got {max_message_bytes!r}")
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise UsageError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, got {synchronous!r}")
        if busy_timeout < 0:
            raise UsageError(f"busy_timeout is in seconds and >= 0, got {busy_timeout!r}")
        if close_timeout is not None and not 0 < close_timeout < float("inf"):
            raise UsageError(
                f"close_timeout is in seconds, > 0 and finite, or None, got {close_timeout!r}"
            )
        if not isinstance(dedupe_window, int | float) or not dedupe_window >= 0:
            raise UsageError(f"dedupe_window is in seconds and >= 0, got {dedupe_window!r}")
        self.path = name
        self._poll = poll
        self._max_bytes = max_message_bytes
        self._synchronous = synchronous
        self._busy_ms = int(busy_timeout * 1000)
        self._close_timeout = close_timeout
        self._slots: dict[str, Slot] = {}
        self._leases = Leases(lease)
        self._writer = Writer(
            repr(self), name, self._leases, batch, self._slots, dedupe_window=float(dedupe_window)
        )
        self._decoders: dict[tuple[type, ...], BodyDecoder] = {}
        self._db: aiosqlite.Connection | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._ticker = anyio.CancelScope()
        self._state: Literal["new", "open", "closed"] = "new"
        self.dead_letters = SqliteDeadLetters(name, self._writer, None)
        """The durable dead-letter table: pass it as ``Runtime(dead_letters=...)``."""

    def __repr__(self) -> str:
        return f"SqliteMailboxes({self.path!r})"

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise UsageError(f"{self!r} was opened already; make a new SqliteMailboxes")
        self._state = "open"
        try:
            db = self._db = await aiosqlite.connect(self.path)
            db.text_factory = decode_text  # one bad text must not fail a whole query
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute(f"PRAGMA synchronous = {self._synchronous}")
            await db.execute(f"PRAGMA busy_timeout = {self._busy_ms}")
            await migrate(db)
            await self._leases.register(db)
            await self._leases.maintain(db)
            await self._leases.free_orphans(db)
            counts = await self._leases.scan(db)
            if await letter_strays(db, list(counts)):
                counts = await self._leases.scan(db)
            for actor, (count, free) in counts.items():
                self._slots[actor] = Slot(actor, count, loose=free > 0)
            await db.commit()
        except (sqlite3.Error, SchemaTooNew) as error:
            self._state = "closed"
            await self._close_connection()
            if is_corruption(error):
                raise corrupted(self.path, error) from error
            reason = (
                f"its schema version {error.found} is newer than this greenroom knows "
                f"({error.known}); upgrade greenroom"
                if isinstance(error, SchemaTooNew)
                else str(error)
            )
            raise MailboxUnavailable(self.path, "open", reason) from error
        except BaseException:
            self._state = "closed"
            await self._close_connection()
            raise
        self._writer.db = db
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        await self._task_group.start(self._writer.run)
        self._task_group.start_soon(self._tick)
        return self

    async def _tick(self) -> None:
        with self._ticker:
            while True:
                await anyio.sleep(self._poll)
                self._writer.tick_due = True
                self._writer.wake()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        task_group, self._task_group = self._task_group, None
        if task_group is None:
            return None
        self._state = "closed"
        for slot in self._slots.values():
            if slot.mailbox is not None:
                slot.mailbox.close()
        self._ticker.cancel()
        writer = self._writer
        stop = writer.stop
        writer.closing = True
        writer.wake()
        try:
            # Shielded, with a deadline of its own: an outer cancellation must
            # not leave the writer mid-commit.
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(
                    float("inf") if self._close_timeout is None else self._close_timeout
                ):
                    await stop.ended.wait()
                if not stop.ended.is_set():
                    # interrupts the statement in flight: the writer ends after it
                    await stop.abandon(self._db, self._close_timeout or 0.0)
            # The block's own exception propagates as it is, not in a group.
            await task_group.__aexit__(None, None, None)
        finally:
            await self._close_connection()
        error = stop.failure or stop.incomplete()
        if error is None:
            return None
        if not isinstance(error, MailboxCorrupted):  # that one was logged when found
            logger.bind(event="mailbox_close_incomplete").error("{error}", error=error)
        if exc is None:  # else the block's own exception propagates
            raise error
        return None

    @property
    def failure(self) -> MailboxCorrupted | None:
        """The corruption that stopped this database while it ran, or ``None``."""
        return self._writer.stop.failure

    async def aclose(self) -> None:
        """Commit what is queued, free this process's leases, close the file. Idempotent.

        Raises:
            MailboxCorrupted: corruption was found while it ran.
            MailboxCloseIncomplete: ``close_timeout`` passed with changes unwritten.
        """
        await self.__aexit__(None, None, None)

    async def _close_connection(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with (
                anyio.CancelScope(shield=True),
                anyio.move_on_after(10),
                contextlib.suppress(sqlite3.Error),
            ):
                await db.close()

    async def flush(self) -> None:
        """Wait until every change queued before this call is committed.

        Puts, acks, retries and dead letters (``offer`` and ``add`` included).

        Raises:
            MailboxClosed: the database is closed.
            MailboxCorrupted: the database was found corrupt.
        """
        # An admin step runs before the next cycle, and a cycle takes one chunk
        # of puts and all other changes: n chunks need n + 2 steps.
        for _ in range(len(self._writer.chunks) + 2):
            await self._writer.run_admin(_nothing)

    def statistics(self) -> SqliteMailboxesStatistics:
        """Counters since the database was opened."""
        writer = self._writer
        return SqliteMailboxesStatistics(
            commits=writer.commits,
            rows=writer.rows,
            largest_batch=writer.largest,
            reclaimed=self._leases.reclaimed,
        )

    # -- the factory -------------------------------------------------------------

    def create(
        self, name: str, config: MailboxConfig, message_types: tuple[type, ...]
    ) -> SqliteMailbox:
        """The durable mailbox of the actor called ``name``, bounded by ``config.capacity``.

        Messages left on disk for ``name`` (by an earlier incarnation, in this
        process or a dead one) are loaded asynchronously, oldest first, and
        the mailbox's listener is called when they are ready.

        Raises:
            MailboxClosed: the database is not open.
            MailboxCorrupted: the database was found corrupt.
        """
        if self._writer.stop.failure is not None:
            raise self._writer.stop.failure
        if self._state != "open":
            raise MailboxClosed(name)
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slots[name] = Slot(name)
        decoder = self._decoders.get(message_types)
        if decoder is None:
            decoder = self._decoders[message_types] = BodyDecoder(message_types, self._max_bytes)
        return SqliteMailbox(name, config.capacity, self._writer, slot, decoder, self._max_bytes)


async def _nothing(db: aiosqlite.Connection) -> None:
    return None
