"""One application of a writer's batch: every statement of one commit cycle.

``apply`` runs the batch's statements in one transaction and commits:
``executemany`` per kind of change, or, ``careful``, one row at a time so a
row that cannot be written (see ``_sqlite_failure.isolatable``) is refused
alone while the rest commits. What it found (which puts were new, which were
refused, the rows fetched and the poison among them) is returned as
:class:`Applied`, for the writer to act on once the commit succeeded.
"""

from __future__ import annotations

import time
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import aiosqlite

from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._sqlite_columns import InvalidText, shown
from greenroom.mailbox._sqlite_failure import isolatable
from greenroom.mailbox._sqlite_rows import poison_letter, read_row, stray_letter
from greenroom.mailbox._sqlite_schema import (
    ACKED,
    ENVELOPE_COLUMNS,
    FETCH,
    FORGET_ACKED,
    INSERT,
    INSERT_LETTER,
    MESSAGES,
    REMEMBER,
)
from greenroom.mailbox._sqlite_slot import Chunk
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.mailbox._sqlite_mailbox import SqliteMailbox
    from greenroom.mailbox._sqlite_writer import Writer

__all__ = [
    "DELETE",
    "DELETE_SEQ",
    "RELEASE",
    "SET_ATTEMPT",
    "Applied",
    "Batch",
    "apply",
    "letter_strays",
    "log_dropped",
]

DELETE = f"DELETE FROM {MESSAGES} WHERE id = ?"
DELETE_SEQ = f"DELETE FROM {MESSAGES} WHERE seq = ?"
SET_ATTEMPT = f"UPDATE {MESSAGES} SET attempt = ? WHERE id = ?"
RELEASE = f"UPDATE {MESSAGES} SET owner = NULL, attempt = attempt + ? WHERE id = ?"

Fetched = tuple["SqliteMailbox", list[Envelope], bool, int]
_seq = itemgetter(0)


class Batch:
    """The changes one cycle takes from the queues."""

    __slots__ = (
        "acks",
        "attempts",
        "chunk",
        "letters",
        "mirrored",
        "releases",
        "remembered",
        "rows",
        "tick",
        "wanted",
    )

    def __init__(self) -> None:
        self.chunk: Chunk | None = None
        self.rows: list[tuple[Any, ...]] = []
        self.mirrored: list[bool] = []
        self.acks: list[tuple[int]] = []
        self.remembered: list[tuple[int, str, float]] = []  # acked keyed tells: id, actor, at
        self.attempts: list[tuple[int, int]] = []
        self.releases: list[tuple[int, int]] = []
        self.letters: list[tuple[Any, ...]] = []
        self.wanted: dict[int, SqliteMailbox] = {}
        self.tick = False


class Applied:
    """What one application of a batch found, acted on once it is committed."""

    __slots__ = ("fetched", "inserted", "poison_rows", "poisoned", "refused", "skipped")

    def __init__(self) -> None:
        self.inserted: list[bool] | None = None  # per put: new (else a duplicate); None: all new
        self.refused: dict[int, str] = {}  # put index -> why its row cannot be stored
        self.fetched: list[Fetched] = []
        self.poisoned: list[tuple[SqliteMailbox, int]] = []  # (box, seq)
        self.poison_rows: list[tuple[Any, ...]] = []
        self.skipped: list[SqliteMailbox] = []  # boxes whose fetch failed row by row


async def apply(writer: Writer, batch: Batch, careful: bool) -> Applied:
    """Apply ``batch`` in one transaction and commit; ``careful``: row by row."""
    db = writer.db
    assert db is not None
    applied = Applied()
    await _many(writer, db, DELETE, batch.acks, careful, "ack")
    await _many(writer, db, REMEMBER, batch.remembered, careful, "acked keyed tell")
    await _many(writer, db, SET_ATTEMPT, batch.attempts, careful, "attempt count")
    await _many(writer, db, RELEASE, batch.releases, careful, "lease release")
    rows = batch.rows
    if rows:
        count = (
            await _insert_each(db, rows, applied.refused)
            if careful
            else (await db.executemany(INSERT, rows)).rowcount
        )
        if count != len(rows):
            applied.inserted = await _which_inserted(db, rows, count, applied.refused)
    if batch.tick:
        await _tick(writer, db, careful)
    for box in batch.wanted.values():  # the batch's own boxes too (Writer._take)
        if not careful:
            await _fetch(writer, db, box, applied)
            continue
        try:
            await _fetch(writer, db, box, applied)
        except Exception as exc:
            if not isolatable(exc):
                raise
            log_dropped(writer, "fetch", box.name, exc)
            applied.skipped.append(box)
    if applied.poisoned:
        await db.executemany(DELETE_SEQ, [(seq,) for _, seq in applied.poisoned])
    await _many(
        writer, db, INSERT_LETTER, batch.letters + applied.poison_rows, careful, "dead letter"
    )
    await db.commit()
    return applied


async def _many(
    writer: Writer,
    db: aiosqlite.Connection,
    sql: str,
    rows: list[tuple[Any, ...]] | list[tuple[int]] | list[tuple[int, int]],
    careful: bool,
    what: str,
) -> None:
    if not rows:
        return
    if not careful:
        await db.executemany(sql, rows)
        return
    for row in rows:
        try:
            await db.execute(sql, row)
        except Exception as exc:
            if not isolatable(exc):
                raise
            log_dropped(writer, what, shown(row[:3]), exc)


async def _insert_each(
    db: aiosqlite.Connection, rows: list[tuple[Any, ...]], refused: dict[int, str]
) -> int:
    count = 0
    for index, row in enumerate(rows):
        try:
            count += (await db.execute(INSERT, row)).rowcount
        except Exception as exc:
            if not isolatable(exc):
                raise
            refused[index] = f"{type(exc).__name__}: {shown(exc)}"
    return count


async def _which_inserted(
    db: aiosqlite.Connection,
    rows: list[tuple[Any, ...]],
    count: int,
    refused: dict[int, str],
) -> list[bool]:
    # Rows inserted by one statement have the highest seqs of all rows
    # with their ids, so the newest `count` of those are the new ones; an
    # id not on disk at all was refused by a constraint (OR IGNORE).
    ids = [row[1] for index, row in enumerate(rows) if index not in refused]
    found = await db.execute_fetchall(
        f"SELECT id FROM {MESSAGES} WHERE id IN ({', '.join('?' * len(ids))}) ORDER BY seq DESC",
        ids,
    )
    present = [ident for (ident,) in found]
    new = set(present[:count])
    on_disk = set(present)
    # A keyed tell acked within the dedupe window is skipped by a trigger: deduped, not refused.
    on_disk.update(
        ident
        for (ident,) in await db.execute_fetchall(
            f"SELECT id FROM {ACKED} WHERE id IN ({', '.join('?' * len(ids))})", ids
        )
    )
    flags = []
    for index, row in enumerate(rows):
        ident = row[1]
        if index in refused:
            flags.append(False)
        elif ident in new:
            flags.append(True)
            new.discard(ident)  # one id inserted once, by its first row
        else:
            flags.append(False)
            if ident not in on_disk:
                refused[index] = "a column that must hold a value is NULL (or NaN)"
    return flags


async def _tick(writer: Writer, db: aiosqlite.Connection, careful: bool) -> None:
    try:
        actors = await writer.leases.maintain(db)
    except Exception as exc:
        if not careful or not isolatable(exc):
            raise
        log_dropped(writer, "lease renewal", writer.name, exc)
        return
    for actor in actors:
        writer.mark_loose(actor)
    await db.execute(FORGET_ACKED, (time.time() - writer.dedupe_window,))


async def _fetch(
    writer: Writer, db: aiosqlite.Connection, box: SqliteMailbox, applied: Applied
) -> None:
    if box._closed:
        box._fetching = False
        return
    gen = box._slot.gen
    limit = writer.batch
    rows = sorted(await db.execute_fetchall(FETCH, (writer.owner, box.name, limit)), key=_seq)
    envelopes = []
    decoder = box._decoder
    for row in rows:
        envelope, poison = read_row(box.name, row, decoder)
        if poison is None:
            envelopes.append(envelope)
            continue
        applied.poisoned.append((box, row[0]))
        applied.poison_rows.append(poison_letter(box.name, envelope, poison))
        logger.bind(actor=box.name, event="poison_message", reason=poison.reason).warning(
            "{actor}: poison message {id} dead-lettered: {error}",
            actor=box.name,
            id=envelope.id,
            error=poison.error.message,
        )
    applied.fetched.append((box, envelopes, len(rows) == limit, gen))


async def letter_strays(db: aiosqlite.Connection, actors: list[object]) -> int:
    """Move the rows of ``actors`` that are no actor's name (not UTF-8 text) to the dead letters.

    No actor can fetch them, so they would stay forever. (The column has
    TEXT affinity: a number is stored as text, a name; only a blob, or
    text that is not UTF-8, names no one.) Runs on open, in the caller's
    transaction; how many rows were moved.
    """
    moved = 0
    for actor in actors:
        if type(actor) is str:
            continue
        key: object = actor
        where = "actor = ?"
        if isinstance(actor, InvalidText):
            where, key = "typeof(actor) = 'text' AND CAST(actor AS BLOB) = ?", actor.raw
        found = list(
            await db.execute_fetchall(
                f"SELECT seq, {ENVELOPE_COLUMNS} FROM {MESSAGES} WHERE {where}", (key,)
            )
        )
        if not found:
            continue
        await db.executemany(INSERT_LETTER, [stray_letter(actor, row) for row in found])
        await db.executemany(DELETE_SEQ, [(row[0],) for row in found])
        moved += len(found)
        logger.bind(event="stray_rows", count=len(found)).warning(
            "{count} stored message(s) name no actor ({actor}): dead-lettered",
            count=len(found),
            actor=shown(actor),
        )
    return moved


def log_dropped(writer: Writer, what: str, where: str, error: Exception) -> None:
    """Say that one change (``what``, at ``where``) could not be written and was dropped."""
    logger.bind(event="mailbox_row_dropped").opt(exception=error).error(
        "{name}: a {what} ({where}) cannot be written and is dropped: {error}",
        name=writer.name,
        what=what,
        where=where,
        error=error,
    )
