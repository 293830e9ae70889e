"""What can be done to the dead-letter table: query, fetch one, redrive, purge.

Each function takes an open connection (the writer's, run between commit
cycles, or the CLI's own) and commits its own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import aiosqlite
import msgspec

from greenroom._errors import ErrorInfo
from greenroom.mailbox._deadletter import DeadLetter
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._sqlite_schema import ACKED, DEAD_LETTERS, LETTER_COLUMNS, MESSAGES

__all__ = [
    "DeadLetterRecord",
    "LetterFilter",
    "RedriveOutcome",
    "get_letter",
    "purge_letters",
    "query_letters",
    "redrive_letters",
]

_decode = msgspec.msgpack.Decoder().decode


class DeadLetterRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A dead letter as stored: its number in the table, and the letter.

    The envelope's ``body`` is the message decoded without its type (a
    dict with its tag field, such as ``{"type": "Greet", "name": "ada"}``),
    or the stored bytes when they are not msgpack (a poison message).
    """

    id: int
    letter: DeadLetter


class RedriveOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What redriving one letter did.

    ``status``: ``"redriven"`` (back in its actor's mailbox table, envelope
    id and trace id kept, ``attempt`` back to 1, the letter removed),
    ``"already_queued"`` (a message with its envelope id is in the mailbox
    already; the letter was removed) or ``"not_found"``.
    """

    id: int
    status: Literal["redriven", "already_queued", "not_found"]
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


def record_from_row(row: Sequence[Any]) -> DeadLetterRecord:
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
    ) = row
    body: object
    try:
        body = _decode(data)
    except msgspec.MsgspecError:
        body = bytes(data)
    envelope = Envelope(
        id=envelope_id,
        recipient=actor,
        body=body,
        sender=sender,
        reply_to=reply_to,
        correlation_id=correlation_id,
        trace_id=trace_id,
        parent_span_id=parent_span_id,
        attempt=attempts,
        created_at=created_at,
        deadline=deadline,
        causation_id=causation_id,
    )
    letter = DeadLetter(
        envelope=envelope,
        actor=actor,
        reason=reason,
        error=ErrorInfo(type=error_type, message=error_message, traceback=traceback),
        at=at,
    )
    return DeadLetterRecord(id=letter_id, letter=letter)


_SELECT = f"SELECT letter_id, {LETTER_COLUMNS} FROM {DEAD_LETTERS}"


async def query_letters(
    db: aiosqlite.Connection, where: LetterFilter, limit: int | None = None
) -> list[DeadLetterRecord]:
    """The letters that match, oldest first, at most ``limit`` of them."""
    clause, params = where.where()
    rows = await db.execute_fetchall(
        f"{_SELECT}{clause} ORDER BY letter_id LIMIT ?", [*params, -1 if limit is None else limit]
    )
    return [record_from_row(row) for row in rows]


async def get_letter(db: aiosqlite.Connection, letter_id: int) -> DeadLetterRecord | None:
    """The letter numbered ``letter_id``, or ``None``."""
    rows = list(await db.execute_fetchall(f"{_SELECT} WHERE letter_id = ?", (letter_id,)))
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
    """Put each letter's envelope back into its actor's mailbox table, in one transaction."""
    outcomes: list[RedriveOutcome] = []
    await db.execute("BEGIN IMMEDIATE")
    try:
        for letter_id in letter_ids:
            rows = list(
                await db.execute_fetchall(
                    f"SELECT actor, envelope_id FROM {DEAD_LETTERS} WHERE letter_id = ?",
                    (letter_id,),
                )
            )
            if not rows:
                outcomes.append(RedriveOutcome(id=letter_id, status="not_found"))
                continue
            actor, envelope_id = rows[0]
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
    """Delete the letters that match; how many were deleted."""
    clause, params = where.where()
    try:
        cursor = await db.execute(f"DELETE FROM {DEAD_LETTERS}{clause}", params)
        await db.commit()
    except BaseException:
        await db.rollback()
        raise
    return cursor.rowcount
