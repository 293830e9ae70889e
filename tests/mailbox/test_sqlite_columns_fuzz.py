"""Fuzz the two column boundaries of the durable mailbox on their own, against a real file.

* ``read_row``: any values in the columns of a fetched row give either an
  envelope whose fields have their types, or a typed poison; never an
  exception.
* ``letter_row``: any dead letter (odd numbers, NaN, lone surrogates, deep or
  unencodable bodies) gives a row that sqlite stores and that reads back
  well typed, so no letter can fail the commit it is in.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes
from greenroom.mailbox._sqlite_columns import InvalidText
from greenroom.mailbox._sqlite_rows import BodyDecoder, Poison, letter_row, read_row
from greenroom.mailbox._sqlite_schema import INSERT_LETTER
from tests._fuzz import FUZZ_SETTINGS, hostile_bytes, hostile_values, record
from tests.mailbox._rows import assert_well_typed, encode, letters


class Work(gr.Message):
    n: int


DECODER = BodyDecoder((Work,), 1 << 20)
GOOD_ROW = (1, 7, "sender", None, None, 7, None, 1, 1.7e9, None, encode(Work(n=1)))


def invalid_text(raw: bytes) -> InvalidText:
    text = InvalidText(raw.decode(errors="replace"))
    text.raw = raw
    return text


column_values = st.one_of(
    hostile_values(),
    st.none(),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.floats(),
    st.integers(),
    st.builds(invalid_text, st.binary(min_size=1, max_size=6)),
)


@st.composite
def rows(draw: st.DrawFn) -> tuple[Any, ...]:
    row = list(GOOD_ROW)
    for index in draw(st.sets(st.integers(1, 10), min_size=1, max_size=4)):
        row[index] = draw(hostile_bytes(GOOD_ROW[10])) if index == 10 else draw(column_values)
    return tuple(row)


@FUZZ_SETTINGS
@given(rows())
def test_read_row_gives_a_typed_envelope_or_a_typed_poison(row: tuple[Any, ...]) -> None:
    try:
        envelope, poison = read_row("w", row, DECODER)
    except Exception:
        record("sqlite-row-columns", "escaped")
        raise
    if poison is None:
        record("sqlite-row-columns", "accepted")
        assert isinstance(envelope.body, Work)
        assert type(envelope.id) is int
        assert type(envelope.attempt) is int
        assert envelope.sender is None or type(envelope.sender) is str
        assert isinstance(envelope.created_at, float | int)
        assert math.isfinite(envelope.created_at)
    else:
        record("sqlite-row-columns", "typed")
        assert isinstance(poison, Poison)
        assert poison.error.type.startswith("greenroom.")
        assert isinstance(envelope.body, bytes)  # kept as stored, for the letter


@pytest.fixture(scope="module")
def letter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("letters") / "m.db"

    async def schema() -> None:
        async with SqliteMailboxes(path):
            pass

    anyio.run(schema)
    return path


def envelope_of(fields: dict[str, Any]) -> gr.Envelope:
    envelope = gr.Envelope(id=1, recipient="w", body=Work(n=1), trace_id=1, created_at=1.0)
    for name, value in fields.items():
        setattr(envelope, name, value)
    return envelope


ENVELOPE_FIELDS = (
    "id",
    "body",
    "sender",
    "reply_to",
    "correlation_id",
    "trace_id",
    "parent_span_id",
    "attempt",
    "created_at",
    "deadline",
)


@settings(parent=FUZZ_SETTINGS, max_examples=120)
@given(
    fields=st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), column_values, max_size=4),
    actor=st.one_of(st.text(max_size=8), st.just("w\udc80")),
    message=st.one_of(st.text(max_size=20), st.just("bad \ud800 input"), hostile_values()),
    at=st.floats(),
)
def test_letter_row_is_always_stored_well_typed(
    letter_file: Path, fields: dict[str, Any], actor: str, message: Any, at: float
) -> None:
    letter = gr.DeadLetter(
        envelope=envelope_of(fields),
        actor=actor,
        reason="handler_failed",
        error=gr.ErrorInfo(type="X", message=message if isinstance(message, str) else "m"),
        at=at,
    )
    try:
        row = letter_row(letter)
        with sqlite3.connect(letter_file) as db:
            db.execute("DELETE FROM greenroom_mailbox_dead_letters")
            db.execute(INSERT_LETTER, row)
    except Exception:
        record("sqlite-letter-rows", "escaped")
        raise
    [stored] = letters(letter_file)
    assert_well_typed(stored)
    record("sqlite-letter-rows", "accepted")
