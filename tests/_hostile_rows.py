"""Hostile rows and entries, written straight into a mailbox database, a trace store or Redis.

What another program, an old version or a corrupted disk may have left: each
column gets a value of any type SQLite can hold (text that is not UTF-8,
huge or odd numbers, NaN, control characters, blobs where text belongs),
drawn with :func:`cells` from :mod:`tests._fuzz`'s natural distributions.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
from hypothesis import strategies as st

from greenroom.mailbox._sqlite_schema import DEAD_LETTERS, LETTER_COLUMNS
from greenroom.mailbox._sqlite_schema import migrate as migrate_mailbox
from greenroom.trace import SqliteTraceStore, new_id
from greenroom.trace._schema import COLUMNS
from tests._fuzz import hostile_bytes, hostile_values

__all__ = [
    "CONTROLS",
    "GOOD_BODY",
    "TEXT",
    "TRACE_ID",
    "add_good_letter",
    "add_good_span",
    "add_poison_letters",
    "cell",
    "insert_row",
    "letter_row",
    "make_mailbox_db",
    "make_trace_db",
    "scratch_dir",
    "span_row",
]


class TEXT(msgspec.Struct, frozen=True):
    """Bytes to be stored as TEXT (``CAST(? AS TEXT)``): text that need not be UTF-8."""

    data: bytes


CONTROLS = "\x1b[2J\x1b]0;owned\x07\u202e\x9b"
"""Text that drives a terminal: clear screen, set title, bidi override, a C1 CSI."""
GOOD_BODY = msgspec.msgpack.encode({"type": "Charge", "order": "A-1", "cents": 1250})
_CONTROLS = ["\x1b[2J", "\x1b]0;owned\x07", "a\rb", "\u202egnp.exe", "\x9b31m", "x\x00y", "\t\n"]


def _bindable(value: Any) -> Any:
    """A hostile value as something sqlite3 can bind (deep data as its repr, cut)."""
    if value is None or type(value) in (int, float, bytes):
        if type(value) is int and not -(2**63) <= value < 2**63:
            return str(value)
        return value
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return TEXT(value.encode("utf-8", "surrogatepass"))
        return value
    try:
        return repr(value)[:5000]
    except RecursionError:  # nesting too deep for repr: the text such data would be
        return "[" * 2000 + "1" + "]" * 2000


@st.composite
def cell(draw: st.DrawFn, *, nullable: bool = True, good: Any = None) -> Any:
    """One hostile value for a column (``good`` now and then, so rows vary one cell at a time)."""
    kinds = ["good", "int", "float", "text", "controls", "bad_text", "blob", "value"]
    if nullable:
        kinds.append("null")
    kind = draw(st.sampled_from(kinds))
    if kind == "good" or (kind == "null" and not nullable):
        return good
    if kind == "null":
        return None
    if kind == "int":
        return draw(st.integers(-(2**63), 2**63 - 1))
    if kind == "float":
        return _storable(draw(st.floats(allow_nan=True, allow_infinity=True)), nullable)
    if kind == "text":
        return draw(st.text(max_size=40))
    if kind == "controls":
        return draw(st.sampled_from(_CONTROLS)) + draw(st.text(max_size=5))
    if kind == "bad_text":
        return TEXT(draw(hostile_bytes(b"billing")))
    if kind == "blob":
        return draw(hostile_bytes(GOOD_BODY))
    return _storable(_bindable(draw(hostile_values())), nullable)


def _storable(value: Any, nullable: bool) -> Any:
    # SQLite has no NaN: it binds as NULL, so a column that cannot be NULL gets the text.
    if not nullable and (value is None or (isinstance(value, float) and value != value)):
        return TEXT(b"nan")
    return value


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary folder in memory where there is one (/dev/shm): fuzz cases commit often."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(dir=base, prefix="greenroom-fuzz-") as folder:
        yield Path(folder)


def insert_row(db: sqlite3.Connection, table: str, columns: str, values: list[Any]) -> int:
    """Insert one row as given (``TEXT`` cells cast to text); the new rowid."""
    marks = ", ".join("CAST(? AS TEXT)" if isinstance(v, TEXT) else "?" for v in values)
    params = [v.data if isinstance(v, TEXT) else v for v in values]
    cursor = db.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", params)
    return int(cursor.lastrowid or 0)


# -- mailbox databases ---------------------------------------------------------

_LETTER_NULLABLE = {"traceback", "sender", "reply_to", "correlation_id", "parent_span_id"}
_LETTER_NULLABLE |= {"deadline", "causation_id"}


def _good_letter() -> dict[str, Any]:
    return {
        "actor": "billing",
        "reason": "handler_failed",
        "error_type": "ValueError",
        "error_message": "no price list for A-1",
        "traceback": "Traceback (most recent call last):\n  ...\nValueError: no price list\n",
        "attempts": 2,
        "at": 1_700_000_000.0,
        "envelope_id": new_id(),
        "sender": None,
        "reply_to": None,
        "correlation_id": None,
        "trace_id": new_id(),
        "parent_span_id": None,
        "created_at": 1_700_000_000.0,
        "deadline": None,
        "body": GOOD_BODY,
        "causation_id": None,
    }


@st.composite
def letter_row(draw: st.DrawFn) -> list[Any]:
    """A dead-letter row in ``LETTER_COLUMNS`` order, each column good or hostile."""
    good = _good_letter()
    return [
        draw(cell(nullable=name in _LETTER_NULLABLE, good=value)) for name, value in good.items()
    ]


def add_good_letter(db: sqlite3.Connection) -> int:
    """A sound letter (as the runtime writes one); its number."""
    return insert_row(db, DEAD_LETTERS, LETTER_COLUMNS, list(_good_letter().values()))


def add_poison_letters(db_path: Path) -> list[int]:
    """Letters as the audit left them: each breaks one naive read."""
    with sqlite3.connect(db_path) as db:
        ids = [add_good_letter(db) for _ in range(6)]
        updates = [
            ("actor = CAST(? AS TEXT)", b"bill\xffing"),
            ("body = ?", b"\x91" * 5000 + b"\x01"),
            ("envelope_id = ?", "not a number"),
            ("at = ?", 1e300),
            ("error_message = ?, traceback = ?", (CONTROLS, f"Traceback\n  {CONTROLS}\n")),
            ("actor = ?, sender = ?", (CONTROLS, 2**62)),
        ]
        for letter_id, (assignment, value) in zip(ids, updates, strict=True):
            values = value if isinstance(value, tuple) else (value,)
            db.execute(
                f"UPDATE {DEAD_LETTERS} SET {assignment} WHERE letter_id = ?", (*values, letter_id)
            )
    return ids


def make_mailbox_db(path: Path) -> Path:
    """An empty mailbox database with greenroom's schema."""

    async def create() -> None:
        import aiosqlite

        async with aiosqlite.connect(path) as db:
            await migrate_mailbox(db)

    anyio.run(create)
    return path


# -- trace stores -----------------------------------------------------------------

TRACE_ID = 0x1234_5678_9ABC_DEF0


def _good_span(span_id: int, parent_id: int | None) -> dict[str, Any]:
    return {
        "span_id": span_id,
        "trace_id": TRACE_ID,
        "parent_id": parent_id,
        "kind": "message",
        "name": "Charge",
        "actor": "billing",
        "start_at": 1_700_000_000.0,
        "end_at": 1_700_000_000.5,
        "status": "ok",
        "tokens": None,
        "attributes": '{"gen_ai.request.model": "m"}',
        "error": None,
    }


@st.composite
def span_row(draw: st.DrawFn, span_id: int) -> list[Any]:
    """A span row in ``COLUMNS`` order, each column but ``span_id`` good or hostile."""
    good = _good_span(span_id, draw(st.sampled_from([None, 1])))
    row = [span_id]
    for name, value in list(good.items())[1:]:
        nullable = name in {"parent_id", "actor", "tokens", "attributes", "error"}
        if name == "trace_id" and draw(st.integers(0, 9)):
            row.append(value)  # mostly in the trace that is read back
        elif name in ("attributes", "error") and draw(st.booleans()):
            row.append(draw(_json_text()))
        else:
            row.append(draw(cell(nullable=nullable, good=value)))
    return row


@st.composite
def _json_text(draw: st.DrawFn) -> Any:
    kind = draw(st.sampled_from(["deep", "not_json", "bad_utf8", "wrong_shape", "controls"]))
    if kind == "deep":
        depth = draw(st.integers(100, 3000))
        return '{"k": ' * depth + "1" + "}" * depth
    if kind == "not_json":
        return draw(st.text(max_size=30))
    if kind == "bad_utf8":
        return TEXT(b'{"k": "\xff\xfe"}')
    if kind == "wrong_shape":
        return draw(st.sampled_from(["[1, 2]", '"text"', "1e999", '{"type": 5}', "null"]))
    return '{"name": "\\u001b[2J\\u202e", "message": "\\u009b1m", "type": "X"}'


def add_good_span(db: sqlite3.Connection, span_id: int = 1) -> None:
    """A sound root span of :data:`TRACE_ID`."""
    insert_row(db, "greenroom_spans", COLUMNS, list(_good_span(span_id, None).values()))


def make_trace_db(path: Path) -> Path:
    """An empty trace store with greenroom's schema."""

    async def create() -> None:
        async with SqliteTraceStore(path):
            pass

    anyio.run(create)
    return path
