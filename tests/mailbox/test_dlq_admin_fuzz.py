"""Fuzz: dead-letter admin reads are total, and any letter can be purged.

Hostile rows go straight into a mailbox database's dead-letter table (text
that is not UTF-8, deep or odd bodies, values of the wrong type in any
column), hostile entries straight into a Redis dead-letter stream (fields
missing, not UTF-8, odd times and counts, headers and bodies from
``hostile_bytes``). Each time a sound letter sits beside it. Listing,
showing, redriving and purging must never raise; the hostile letter is read
(with its ``problems`` named) and can be purged; the sound letter is
untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.mailbox import RedisDeadLetters, SqliteDeadLetters, make_envelope
from greenroom.mailbox._redis_mailbox_entries import letter_fields
from greenroom.mailbox._sqlite_schema import DEAD_LETTERS, LETTER_COLUMNS, MESSAGES
from tests._fuzz import FUZZ_SETTINGS, hostile_bytes, record
from tests._hostile_rows import (
    add_good_letter,
    insert_row,
    letter_row,
    make_mailbox_db,
    scratch_dir,
)
from tests._redis_server import redis_prefix, redis_url


class Charge(gr.Message):
    order: str


@pytest.fixture(scope="module")
def mailbox_db() -> Iterator[Path]:
    with scratch_dir() as folder:
        yield make_mailbox_db(folder / "mail.db")


def _raw(record_: Any) -> bool:
    return isinstance(record_.letter.envelope.body, bytes)


@settings(parent=FUZZ_SETTINGS, max_examples=120)
@given(row=letter_row())
def test_any_stored_letter_is_listed_shown_and_purged(mailbox_db: Path, row: list[Any]) -> None:
    with sqlite3.connect(mailbox_db) as db:
        db.execute(f"DELETE FROM {DEAD_LETTERS}")
        db.execute(f"DELETE FROM {MESSAGES}")
        good_id = add_good_letter(db)
        bad_id = insert_row(db, DEAD_LETTERS, LETTER_COLUMNS, row)

    async def check() -> str:
        async with SqliteDeadLetters.open(mailbox_db, read_only=True) as letters:
            listed = {r.id: r for r in await letters.query()}
            assert set(listed) == {good_id, bad_id}
            assert await letters.query(actor="billing", since=0.0, until=2e9) is not None
            shown = await letters.get(bad_id)
            assert shown is not None
            assert shown == listed[bad_id]
        outcome = "typed" if shown.problems or _raw(shown) else "accepted"
        async with SqliteDeadLetters.open(mailbox_db) as letters:
            [redriven] = await letters.redrive([bad_id])
            assert redriven.status in ("redriven", "already_queued", "unreadable")
            assert (redriven.status == "unreadable") == (not shown.redrivable)
            if redriven.status == "unreadable":
                assert await letters.purge([bad_id]) == 1
            [good] = await letters.query()
            assert good.id == good_id
            assert not good.problems
            assert good.letter.envelope.body == {"type": "Charge", "order": "A-1", "cents": 1250}
        return outcome

    try:
        outcome = anyio.run(check)
    except Exception:
        record("dlq-admin-sqlite", "escaped")
        raise
    record("dlq-admin-sqlite", outcome)


def test_a_letter_whose_envelope_cannot_be_read_is_left_not_redriven_into_nothing(
    mailbox_db: Path,
) -> None:
    """INSERT OR IGNORE would drop a NULL-id envelope silently; the letter is kept instead."""
    with sqlite3.connect(mailbox_db) as db:
        db.execute(f"DELETE FROM {DEAD_LETTERS}")
        db.execute(f"DELETE FROM {MESSAGES}")
        bad = add_good_letter(db)
        db.execute(
            f"UPDATE {DEAD_LETTERS} SET envelope_id = 'not a number' WHERE letter_id = ?", (bad,)
        )

    async def check() -> None:
        async with SqliteDeadLetters.open(mailbox_db) as letters:
            [outcome] = await letters.redrive([bad])
            assert outcome.status == "unreadable"
            [kept] = await letters.query()
            assert kept.problems == (
                "envelope_id: expected an integer, found bytes b'not a number'",
            )
            assert kept.letter.envelope.id == 0

    anyio.run(check)
    with sqlite3.connect(mailbox_db) as db:
        assert db.execute(f"SELECT count(*) FROM {MESSAGES}").fetchone() == (0,)


# -- Redis -------------------------------------------------------------------------

_FIELDS = [b"actor", b"reason", b"error_type", b"error", b"at", b"attempts", b"h", b"b", b"id"]
_FIELDS.append(b"traceback")


@st.composite
def hostile_entry(draw: st.DrawFn) -> dict[bytes, bytes]:
    good = letter_fields(
        gr.DeadLetter(
            envelope=make_envelope("billing", Charge(order="A-1")),
            actor="billing",
            reason="handler_failed",
            error=gr.ErrorInfo(type="ValueError", message="no", traceback="Traceback\n"),
        )
    )
    fields: dict[bytes, bytes] = {}
    for name in _FIELDS:
        value = good.get(name.decode())
        kind = draw(st.sampled_from(["good", "missing", "hostile", "number"]))
        if kind == "good" and value is not None:
            fields[name] = value if isinstance(value, bytes) else str(value).encode()
        elif kind == "hostile":
            fields[name] = draw(hostile_bytes(value if isinstance(value, bytes) else None))
        elif kind == "number":
            fields[name] = draw(
                st.sampled_from([b"nan", b"inf", b"-1e999", b"1e300", b"9" * 5000, b"0x10"])
            )
    if not fields:
        fields[b"x"] = b""
    return fields


@pytest.fixture(scope="module")
def redis_source() -> tuple[str, str]:
    return redis_url(), redis_prefix()


@settings(parent=FUZZ_SETTINGS, max_examples=100)
@given(fields=hostile_entry())
def test_any_redis_dead_letter_is_listed_shown_and_purged(
    redis_source: tuple[str, str], fields: dict[bytes, bytes]
) -> None:
    url, prefix = redis_source
    client = redis.Redis.from_url(url)
    try:
        client.delete(f"{prefix}dead")
        good = letter_fields(
            gr.DeadLetter(
                envelope=make_envelope("shipping", Charge(order="B-2")),
                actor="shipping",
                reason="handler_failed",
                error=gr.ErrorInfo(type="ValueError", message="kept"),
            )
        )
        good_id = client.xadd(f"{prefix}dead", good).decode()  # type: ignore[arg-type, union-attr]
        bad_id = client.xadd(f"{prefix}dead", fields).decode()  # type: ignore[arg-type, union-attr]
    finally:
        client.close()

    async def check() -> str:
        async with RedisDeadLetters(url, prefix=prefix) as letters:
            listed = {r.id: r for r in await letters.query()}
            assert set(listed) == {good_id, bad_id}
            await letters.query(actor="billing", since=0.0, until=2e9)
            shown = await letters.get(bad_id)
            assert shown == listed[bad_id]
            unusual = shown.problems or not shown.header_ok or _raw(shown)
            outcome = "typed" if unusual else "accepted"
            [redriven] = await letters.redrive([bad_id])
            assert redriven.status in ("redriven", "already_queued", "unreadable")
            if redriven.status == "unreadable":
                assert await letters.purge([bad_id]) == 1
            [kept] = await letters.query()
            assert (kept.id, kept.letter.error.message, kept.problems) == (good_id, "kept", ())
            assert kept.letter.envelope.body == {"type": "Charge", "order": "B-2"}
            return outcome

    try:
        outcome = anyio.run(check, backend="asyncio")
    except Exception:
        record("dlq-admin-redis", "escaped")
        raise
    record("dlq-admin-redis", outcome)


def test_redis_letter_ids_out_of_range_are_usage_errors(redis_source: tuple[str, str]) -> None:
    url, prefix = redis_source

    async def check() -> None:
        async with RedisDeadLetters(url, prefix=prefix) as letters:
            for bad in ("1-0\n", "\u0661-\u0660", f"{2**64}-0", "-1-0", "1-0-0"):
                with pytest.raises(gr.UsageError, match="stream entry id"):
                    await letters.get(bad)
        with pytest.raises(gr.UsageError, match="not valid text"):
            RedisDeadLetters(url, prefix="p\udcff")

    anyio.run(check, backend="asyncio")
