"""What can be done to the dead-letter table: query, fetch one, redrive, purge.

Each function takes an open connection (the writer's, run between commit
cycles, or the CLI's own) and commits its own transaction.

Reading is total: a stored row with values of the wrong type, text that is
not UTF-8, a body that is not msgpack (or nested too deep, or with
unhashable keys) still reads as a :class:`DeadLetterRecord`, with neutral
values where it could not be read and a line in its ``problems``; so any
letter can be listed, shown and purged. Text is selected as bytes
(:data:`SELECT_LETTERS`) and decoded here, since sqlite3 would otherwise
fail the whole query on one row that is not UTF-8.
"""

from __future__ import annotations

import contextlib
import math
import os
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from typing import Any, Final, Literal

import aiosqlite
import msgspec

from greenroom._errors import ErrorInfo, UsageError
from greenroom._stored import stored_body, stored_int, stored_text, stored_time
from greenroom.mailbox._deadletter import DeadLetter, DeadLetterReason
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import MailboxUnavailable
from greenroom.mailbox._sqlite_schema import (
    ACKED,
    DEAD_LETTERS,
    LETTER_COLUMNS,
    MESSAGES,
    MIGRATIONS,
    SCHEMA_TABLE,
    migrate,
)

__all__ = [
    "SELECT_LETTERS",
    "DeadLetterRecord",
    "LetterFilter",
    "RedriveOutcome",
    "check_letter_id",
    "get_letter",
    "open_mailbox_database",
    "purge_letters",
    "query_letters",
    "record_from_row",
    "redrive_letters",
]

_MAX_INT: Final = (1 << 63) - 1
# The columns a redrive copies into the mailbox: a letter with a problem in one
# of them is not redriven (its message could not be delivered, or would be lost).
_ENVELOPE_COLUMNS: Final = frozenset(
    {
        "actor",
        "envelope_id",
        "sender",
        "reply_to",
        "correlation_id",
        "trace_id",
        "parent_span_id",
        "attempts",
        "created_at",
        "deadline",
    }
)


class DeadLetterRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter as stored: its number in the table, and the letter.

    The envelope's ``body`` is the message decoded without its type (a
    dict with its tag field, such as ``{"type": "Greet", "name": "ada"}``),
    or the stored bytes when they cannot be decoded (a poison message: not
    msgpack, text that is not UTF-8, nesting too deep, unhashable keys).
    ``problems`` lists the other values of the row that could not be read as
    stored, one line each (``"envelope_id: expected an integer, found ..."``);
    the letter shows neutral values there (0, ``""``, ``None``). A letter
    with a problem in its envelope's columns cannot be redriven; any letter
    can be purged.
    """

    id: int
    letter: DeadLetter
    problems: tuple[str, ...] = ()

    @property
    def redrivable(self) -> bool:
        """Whether every column a redrive copies was read as stored."""
        return not any(p.partition(":")[0] in _ENVELOPE_COLUMNS for p in self.problems)


class RedriveOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What redriving one letter did.

    ``status``: ``"redriven"`` (back in its actor's mailbox table, envelope
    id and trace id kept, ``attempt`` back to 1, the letter removed),
    ``"already_queued"`` (a message with its envelope id is in the mailbox
    already; the letter was removed), ``"unreadable"`` (a value its envelope
    needs could not be read, see :attr:`DeadLetterRecord.problems`; the
    letter is left: purge it) or ``"not_found"``.
    """

    id: int
    status: Literal["redriven", "already_queued", "unreadable", "not_found"]
    actor: str | None = None
    envelope_id: int | None = None


class LetterFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which letters: all the given conditions hold. ``None`` places no condition.

    Times are seconds since the epoch; ``since`` is inclusive, ``until`` exclusive.
    """

    actor: str | None = None
    reason: str | None = None
    error_type: str | None = None
    since: float | None = None
    until: float | None = None
    ids: tuple[int, ...] | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The SQL ``WHERE`` clause and its parameters.

        Raises:
            UsageError: a text that cannot be stored (a lone surrogate), a
                time that is not a number (or NaN), an id that is not a
                64-bit int.
        """
        self._check()
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("actor", self.actor),
            ("reason", self.reason),
            ("error_type", self.error_type),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append("at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("at < ?")
            params.append(self.until)
        if self.ids is not None:
            clauses.append(f"letter_id IN ({', '.join('?' * len(self.ids)) or 'NULL'})")
            params.extend(self.ids)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _check(self) -> None:
        for name, text in (
            ("actor", self.actor),
            ("reason", self.reason),
            ("error_type", self.error_type),
        ):
            if text is None:
                continue
            if not isinstance(text, str):
                raise UsageError(f"the {name} filter is a str, got {type(text).__name__}")
            try:
                text.encode()
            except UnicodeEncodeError as error:
                raise UsageError(
                    f"the {name} filter {text!r} is not valid text (it holds a lone "
                    "surrogate, from bytes that are not UTF-8); no stored letter can match it"
                ) from error
        for name, at in (("since", self.since), ("until", self.until)):
            if at is not None and (type(at) not in (int, float) or math.isnan(at)):
                raise UsageError(f"{name} is seconds since the epoch, got {at!r}")
        for letter_id in self.ids or ():
            check_letter_id(letter_id)


def check_letter_id(letter_id: object) -> int:
    """``letter_id`` if it can name a letter (an int from 0 to 2**63 - 1).

    Raises:
        UsageError: it cannot.
    """
    if type(letter_id) is not int or not 0 <= letter_id <= _MAX_INT:
        raise UsageError(
            "a dead letter in a database is named by its number, an int from 0 to 2**63 - 1 "
            f"(from `greenroom dlq list`); got {letter_id!r}"
        )
    return letter_id


def record_from_row(row: Sequence[Any]) -> DeadLetterRecord:
    """A row of :data:`SELECT_LETTERS` as a record. Total: never raises (see the module docs)."""
    problems: list[str] = []
    cells = list(row) + [None] * max(0, 18 - len(row))
    (
        letter_id,
        actor,
        reason,
        error_type,
        error_message,
        traceback,
        attempts,
        at,
        envelope_id,
        sender,
        reply_to,
        correlation_id,
        trace_id,
        parent_span_id,
        created_at,
        deadline,
        data,
        causation_id,
    ) = cells[:18]
    actor_text = stored_text(actor, "actor", problems)
    envelope = Envelope(
        id=stored_int(envelope_id, "envelope_id", problems),
        recipient=actor_text,
        body=stored_body(data, problems),
        sender=stored_text(sender, "sender", problems, null=True),
        reply_to=stored_text(reply_to, "reply_to", problems, null=True),
        correlation_id=stored_int(correlation_id, "correlation_id", problems, null=True),
        trace_id=stored_int(trace_id, "trace_id", problems),
        parent_span_id=stored_int(parent_span_id, "parent_span_id", problems, null=True),
        attempt=stored_int(attempts, "attempts", problems),
        created_at=stored_time(created_at, "created_at", problems),
        deadline=stored_time(deadline, "deadline", problems, null=True),
        causation_id=stored_int(causation_id, "causation_id", problems, null=True),
    )
    reason_text: DeadLetterReason = stored_text(reason, "reason", problems)
    letter = DeadLetter(
        envelope=envelope,
        actor=actor_text,
        reason=reason_text,
        error=ErrorInfo(
            type=stored_text(error_type, "error_type", problems),
            message=stored_text(error_message, "error_message", problems),
            traceback=stored_text(traceback, "traceback", problems, null=True),
        ),
        at=stored_time(at, "at", problems),
    )
    return DeadLetterRecord(
        id=stored_int(letter_id, "letter_id", problems), letter=letter, problems=tuple(problems)
    )


def _as_bytes(column: str) -> str:
    return f"CASE WHEN typeof({column}) = 'text' THEN CAST({column} AS BLOB) ELSE {column} END"


SELECT_LETTERS: Final = (
    "SELECT letter_id, "
    + ", ".join(_as_bytes(c.strip()) for c in LETTER_COLUMNS.split(","))
    + f" FROM {DEAD_LETTERS}"
)
"""The letters' columns (text as bytes, decoded by :func:`record_from_row`), for a ``WHERE``."""


async def query_letters(
    db: aiosqlite.Connection, where: LetterFilter, limit: int | None = None
) -> list[DeadLetterRecord]:
    """The letters that match, oldest first, at most ``limit`` of them.

    Raises:
        UsageError: a bad filter (see :meth:`LetterFilter.where`), or a
            ``limit`` that is not ``None`` or an int from 0 to 2**63 - 1.
    """
    clause, params = where.where()
    if limit is not None and (type(limit) is not int or not 0 <= limit <= _MAX_INT):
        raise UsageError(f"limit is None or an int from 0 to 2**63 - 1, got {limit!r}")
    rows = await db.execute_fetchall(
        f"{SELECT_LETTERS}{clause} ORDER BY letter_id LIMIT ?",
        [*params, -1 if limit is None else limit],
    )
    return [record_from_row(row) for row in rows]


async def get_letter(db: aiosqlite.Connection, letter_id: int) -> DeadLetterRecord | None:
    """The letter numbered ``letter_id``, or ``None``.

    Raises:
        UsageError: ``letter_id`` is not an int from 0 to 2**63 - 1.
    """
    check_letter_id(letter_id)
    rows = list(await db.execute_fetchall(f"{SELECT_LETTERS} WHERE letter_id = ?", (letter_id,)))
    return record_from_row(rows[0]) if rows else None


_REDRIVE = (
    f"INSERT OR IGNORE INTO {MESSAGES} (actor, id, sender, reply_to, correlation_id, trace_id, "
    "parent_span_id, attempt, created_at, deadline, body, causation_id, owner) "
    "SELECT actor, envelope_id, sender, reply_to, correlation_id, trace_id, parent_span_id, 1, "
    f"created_at, deadline, body, causation_id, NULL FROM {DEAD_LETTERS} WHERE letter_id = ?"
)
# A redrive is meant to deliver: a keyed tell remembered as acked is forgotten first.
_UNREMEMBER = f"DELETE FROM {ACKED} WHERE id = ?"


async def redrive_letters(
    db: aiosqlite.Connection, letter_ids: Sequence[int]
) -> list[RedriveOutcome]:
    """Put each letter's envelope back into its actor's mailbox table, in one transaction.

    A letter whose envelope columns cannot be read as stored (see
    :attr:`DeadLetterRecord.redrivable`) is left where it is, as
    ``"unreadable"``.

    Raises:
        UsageError: an id is not an int from 0 to 2**63 - 1 (nothing is done).
    """
    ids = [check_letter_id(letter_id) for letter_id in letter_ids]
    outcomes: list[RedriveOutcome] = []
    await db.execute("BEGIN IMMEDIATE")
    try:
        for letter_id in ids:
            rows = list(
                await db.execute_fetchall(f"{SELECT_LETTERS} WHERE letter_id = ?", (letter_id,))
            )
            if not rows:
                outcomes.append(RedriveOutcome(id=letter_id, status="not_found"))
                continue
            record = record_from_row(rows[0])
            actor, envelope_id = record.letter.actor, record.letter.envelope.id
            if not record.redrivable:
                outcomes.append(RedriveOutcome(id=letter_id, status="unreadable", actor=actor))
                continue
            await db.execute(_UNREMEMBER, (envelope_id,))
            cursor = await db.execute(_REDRIVE, (letter_id,))
            status: Literal["redriven", "already_queued"] = (
                "redriven" if cursor.rowcount == 1 else "already_queued"
            )
            await db.execute(f"DELETE FROM {DEAD_LETTERS} WHERE letter_id = ?", (letter_id,))
            outcomes.append(
                RedriveOutcome(id=letter_id, status=status, actor=actor, envelope_id=envelope_id)
            )
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return outcomes


async def purge_letters(db: aiosqlite.Connection, where: LetterFilter) -> int:
    """Delete the letters that match, whatever they hold; how many were deleted.

    Raises:
        UsageError: a bad filter (see :meth:`LetterFilter.where`).
    """
    clause, params = where.where()
    try:
        cursor = await db.execute(f"DELETE FROM {DEAD_LETTERS}{clause}", params)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return cursor.rowcount


def _read_only_uri(path: str) -> str:
    absolute = os.path.abspath(path)
    return "file:" + urllib.parse.quote_from_bytes(os.fsencode(absolute)) + "?mode=ro"


@contextlib.asynccontextmanager
async def open_mailbox_database(
    path: str, *, busy_timeout: float = 5.0, read_only: bool = False
) -> AsyncIterator[aiosqlite.Connection]:
    """A connection to an existing mailbox database, checked to be one; closed on exit.

    ``read_only`` opens it with an SQLite ``mode=ro`` URI: nothing can be
    written through it (SQLite may keep its own ``-wal``/``-shm`` files
    beside a database in WAL mode). The file is never created.

    Raises:
        UsageError: ``path`` is not a file, not an SQLite file, or holds no
            greenroom mailbox schema.
        MailboxUnavailable: the database cannot be opened or read, or its
            schema is newer than this greenroom knows.
    """
    if not os.path.isfile(path):  # noqa: ASYNC240 - one stat, before any I/O
        what = "is not a file" if os.path.exists(path) else "does not exist"  # noqa: ASYNC240
        raise UsageError(f"no mailbox database at {path}: the file {what}")
    try:
        if read_only:
            db = await aiosqlite.connect(_read_only_uri(path), uri=True)
        else:
            db = await aiosqlite.connect(path)
    except sqlite3.Error as error:
        raise MailboxUnavailable(path, "open", str(error)) from error
    try:
        await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        version = await _check_schema(db, path)
        if version < MIGRATIONS[-1][0]:
            if read_only:
                raise MailboxUnavailable(
                    path,
                    "open",
                    f"its schema version {version} is older than this greenroom's "
                    f"({MIGRATIONS[-1][0]}); a command that writes (redrive, purge) or a "
                    "runtime opening it upgrades it",
                )
            await migrate(db)
        yield db
    finally:
        with contextlib.suppress(sqlite3.Error, ValueError):
            await db.close()


async def _check_schema(db: aiosqlite.Connection, path: str) -> int:
    not_ours = f"{path} is not a greenroom mailbox database"
    try:
        rows = list(
            await db.execute_fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)",
                (SCHEMA_TABLE, DEAD_LETTERS),
            )
        )
        if len(rows) < 2:
            raise UsageError(f"{not_ours} (it has no {SCHEMA_TABLE} table)")
        found = list(await db.execute_fetchall(f"SELECT max(version) FROM {SCHEMA_TABLE}"))
    except sqlite3.DatabaseError as error:
        if getattr(error, "sqlite_errorname", "") == "SQLITE_NOTADB":
            raise UsageError(f"{not_ours} (it is not an SQLite file)") from error
        raise MailboxUnavailable(path, "open", str(error)) from error
    version, known = found[0][0] if found else None, MIGRATIONS[-1][0]
    if type(version) is not int:
        raise UsageError(f"{not_ours} (its schema version {version!r} is not a number)")
    if version > known:
        raise MailboxUnavailable(
            path,
            "open",
            f"its schema version {version} is newer than this greenroom knows ({known}); "
            "upgrade greenroom",
        )
    return version
