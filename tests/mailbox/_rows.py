"""Rows written straight into a durable mailbox file, as other code or a damaged disk might.

``insert(db, actor, ident, body, **columns)`` writes one message row; a
column value is bound as it is, or, wrapped in :class:`Text`, stored as
sqlite TEXT made of those raw bytes (so it can be text that is not UTF-8).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec

MESSAGES = "greenroom_mailbox_messages"
LETTERS = "greenroom_mailbox_dead_letters"


class Text:
    """A TEXT value of these raw bytes (``CAST(? AS TEXT)``): not necessarily UTF-8."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def __repr__(self) -> str:
        return f"Text({self.raw!r})"


def insert(
    db: sqlite3.Connection, actor: str, ident: object, body: object, **columns: object
) -> None:
    values: dict[str, object] = {
        "actor": actor,
        "id": ident,
        "trace_id": ident if type(ident) is int else 1,
        "attempt": 1,
        "created_at": time.time(),
        "body": body,
    }
    values.update(columns)
    names = ", ".join(values)
    marks = ", ".join("CAST(? AS TEXT)" if isinstance(v, Text) else "?" for v in values.values())
    params = [v.raw if isinstance(v, Text) else v for v in values.values()]
    db.execute(f"INSERT INTO {MESSAGES} ({names}) VALUES ({marks})", params)


def encode(value: object) -> bytes:
    return msgspec.msgpack.encode(value)


def count(path: Path, table: str = MESSAGES) -> int:
    with sqlite3.connect(path) as db:
        (n,) = db.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(n)


def letters(path: Path) -> list[dict[str, object]]:
    """The dead-letter rows as stored, each with ``types``: the sqlite type of every column.

    Read here rather than through ``SqliteDeadLetters`` so a test sees the
    rows exactly as the writer left them.
    """
    with sqlite3.connect(path) as db:
        names = [row[1] for row in db.execute(f"PRAGMA table_info({LETTERS})")]
        db.text_factory = bytes  # whatever the text holds
        typeof = ", ".join(f"typeof({name})" for name in names)
        rows = db.execute(f"SELECT *, {typeof} FROM {LETTERS} ORDER BY letter_id").fetchall()
    out = []
    for row in rows:
        entry: dict[str, object] = dict(zip(names, row[: len(names)], strict=True))
        entry["types"] = dict(zip(names, (t.decode() for t in row[len(names) :]), strict=True))
        out.append(entry)
    return out


LETTER_TYPES = {
    "letter_id": {"integer"},
    "actor": {"text"},
    "reason": {"text"},
    "error_type": {"text"},
    "error_message": {"text"},
    "traceback": {"text", "null"},
    "attempts": {"integer"},
    "at": {"real"},
    "envelope_id": {"integer"},
    "sender": {"text", "null"},
    "reply_to": {"text", "null"},
    "correlation_id": {"integer", "null"},
    "trace_id": {"integer"},
    "parent_span_id": {"integer", "null"},
    "created_at": {"real"},
    "deadline": {"real", "null"},
    "body": {"blob"},
}
"""The sqlite types each column of a dead-letter row written by greenroom may have."""


def assert_well_typed(letter: dict[str, object]) -> None:
    """Every column of a stored letter has its type, and its text is UTF-8."""
    types = letter["types"]
    assert isinstance(types, dict)
    for name, allowed in LETTER_TYPES.items():
        assert types[name] in allowed, (name, types[name], letter[name])
        value = letter[name]
        if types[name] == "text":
            assert isinstance(value, bytes)
            value.decode()  # raises if not UTF-8
