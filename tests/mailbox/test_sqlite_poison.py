"""Poison rows never block a durable mailbox: they become dead letters with their error."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes
from tests.mailbox._kinds import Item
from tests.mailbox.test_sqlite_mailbox import Waiter, seqs

pytestmark = pytest.mark.anyio
LIMIT = 200


def insert(db: sqlite3.Connection, ident: int, body: bytes) -> None:
    db.execute(
        "INSERT INTO greenroom_mailbox_messages (actor, id, trace_id, attempt, created_at, body) "
        "VALUES ('a', ?, ?, 1, ?, ?)",
        (ident, ident, time.time(), body),
    )


def good(seq: int) -> bytes:
    return msgspec.msgpack.encode(Item(sender=0, seq=seq))


POISON = {
    "random bytes": (bytes(range(256))[::7] * 3, "invalid_message", "UndecodableMessage"),
    "truncated msgpack": (good(99)[:-3], "invalid_message", "UndecodableMessage"),
    "unknown tag": (
        msgspec.msgpack.encode({"type": "Nope", "x": 1}),
        "unknown_message",
        "UnknownMessage",
    ),
    "wrong field types": (
        msgspec.msgpack.encode({"type": "Item", "sender": "x", "seq": 1}),
        "invalid_message",
        "UndecodableMessage",
    ),
    "oversized body": (
        msgspec.msgpack.encode({"type": "Item", "sender": 0, "seq": 0, "pad": "x" * LIMIT}),
        "too_large",
        "MessageTooLarge",
    ),
}


async def test_poison_rows_go_to_the_dead_letter_table_and_the_rows_behind_are_delivered(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path):
        pass  # creates the schema
    with sqlite3.connect(path) as db:
        ident = 1
        for seq, (body, _, _) in enumerate(POISON.values()):
            insert(db, ident, good(seq))
            insert(db, ident + 1, body)
            ident += 2
        insert(db, ident, good(len(POISON)))
    async with SqliteMailboxes(path, max_message_bytes=LIMIT, batch=4) as boxes:
        box = boxes.create("a", gr.MailboxConfig(capacity=64), (Item,))
        waiter = Waiter(box)
        got = await waiter.take_all(len(POISON) + 1)
        assert [s for _, s in seqs(got)] == list(range(len(POISON) + 1))
        for envelope in got:
            box.ack(envelope)
        letters = await boxes.dead_letters.query(actor="a")
        assert len(box) == 0
    assert [(r.letter.reason, r.letter.error.type.rsplit(".")[-1]) for r in letters] == [
        (reason, error) for _, reason, error in POISON.values()
    ]
    for record, (body, _, _) in zip(letters, POISON.values(), strict=True):
        assert record.letter.envelope.id % 2 == 0  # the poison ones
        stored = record.letter.envelope.body
        # The letter keeps the body exactly as it was stored (decoded when it can be).
        assert stored == body or msgspec.msgpack.encode(stored) == body
        assert record.letter.error.message
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone() == (0,)


async def test_an_actor_with_no_message_types_dead_letters_every_stored_message(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path):
        pass
    with sqlite3.connect(path) as db:
        insert(db, 1, good(1))
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", gr.MailboxConfig(), ())
        waiter = Waiter(box)
        letters = []
        for _ in range(100):
            await boxes.dead_letters.query()  # runs after the next commit cycle
            letters = await boxes.dead_letters.query()
            if letters:
                break
        assert [r.letter.reason for r in letters] == ["unknown_message"]
        assert box.get_nowait() is None
        assert waiter.box is box
