"""A stored row that cannot be delivered as it is becomes a typed dead letter; the rest flow.

Beyond undecodable bodies (``test_sqlite_poison``): text that is not UTF-8
in any column, columns of the wrong type or out of range, leases held by no
known holder, an owners row no greenroom wrote; and on the write side, a put
or a dead letter holding a value sqlite cannot store, and a listener that
raises. None of them may stop the writer or the other messages.
"""

from __future__ import annotations

import math
import sqlite3
import time
from pathlib import Path

import anyio
import pytest

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes, make_envelope
from tests.mailbox._kinds import Item
from tests.mailbox._rows import LETTERS, Text, count, encode, insert
from tests.mailbox.test_sqlite_mailbox import Waiter, seqs

pytestmark = pytest.mark.anyio
CONFIG = gr.MailboxConfig(capacity=64)


def good(seq: int) -> bytes:
    return encode(Item(sender=0, seq=seq))


async def schema(path: Path) -> None:
    async with SqliteMailboxes(path):
        pass


async def deliver_all(path: Path, expected: int) -> tuple[list[gr.Envelope], list[gr.DeadLetter]]:
    """Open ``path``, take ``expected`` messages of actor "a", ack them; they and the letters."""
    async with SqliteMailboxes(path, batch=3) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        got = await Waiter(box).take_all(expected)
        for envelope in got:
            box.ack(envelope)
        await boxes.flush()
        letters = [record.letter for record in await boxes.dead_letters.query()]
        assert box.get_nowait() is None
    assert count(path) == 0
    return got, letters


BAD_COLUMNS = {
    "body that is text, not UTF-8": {"body": Text(b"\x82\xa4type\xa4Item\xff")},
    "sender not UTF-8": {"sender": Text(b"\xc3\x28")},
    "reply_to not UTF-8": {"reply_to": Text(b"\xed\xa0\x80")},
    "sender a blob": {"sender": b"\x00\x01"},
    "id text": {"id": "abc"},
    "id negative": {"id": -5},
    "trace_id real": {"trace_id": 1.5},
    "correlation_id text": {"correlation_id": "c"},
    "parent_span_id a blob": {"parent_span_id": b"x"},
    "attempt text": {"attempt": "x"},
    "attempt zero": {"attempt": 0},
    "attempt past int32": {"attempt": 2**63 - 1},
    "created_at text": {"created_at": "yesterday"},
    "created_at infinite": {"created_at": math.inf},
    "deadline text": {"deadline": "soon"},
}


async def test_rows_with_bad_columns_are_dead_lettered_with_the_column_named(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    await schema(path)
    with sqlite3.connect(path) as db:
        ident = 1
        for seq, columns in enumerate(BAD_COLUMNS.values()):
            insert(db, "a", ident, good(seq))
            bad = {"id": 10_000 + ident, **columns}
            insert(db, "a", bad.pop("id"), bad.pop("body", good(99)), **bad)
            ident += 1
        insert(db, "a", ident, good(len(BAD_COLUMNS)))
    got, letters = await deliver_all(path, len(BAD_COLUMNS) + 1)
    assert [s for _, s in seqs(got)] == list(range(len(BAD_COLUMNS) + 1))
    assert len(letters) == len(BAD_COLUMNS)
    for letter, (case, columns) in zip(letters, BAD_COLUMNS.items(), strict=True):
        assert letter.reason == "invalid_message", case
        assert letter.error.type == "greenroom.UndecodableMessage", case
        column = next(iter(columns))
        if column != "body":
            assert f"column {column} holds" in letter.error.message, (case, letter.error.message)
        # the letter itself is well typed, whatever the row held
        assert type(letter.envelope.id) is int
        assert type(letter.envelope.attempt) is int
        assert type(letter.envelope.created_at) is float


async def test_a_text_body_that_is_not_utf8_is_kept_as_its_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    await schema(path)
    raw = b"\x82\xa4type\xa4Item\xff"
    with sqlite3.connect(path) as db:
        insert(db, "a", 1, Text(raw))
        insert(db, "a", 2, good(0))
    _, letters = await deliver_all(path, 1)
    [letter] = letters
    assert letter.envelope.id == 1
    assert letter.envelope.body == raw  # not msgpack: kept as the bytes that were stored


async def test_a_row_leased_to_no_known_holder_is_freed_on_open(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    await schema(path)
    with sqlite3.connect(path) as db:
        insert(db, "a", 1, good(0), owner=12345)  # no such holder
        insert(db, "a", 2, good(1), owner="someone")  # not even an id
        insert(db, "a", 3, good(2))
    got, letters = await deliver_all(path, 3)
    assert sorted(s for _, s in seqs(got)) == [0, 1, 2]
    assert letters == []
    assert sorted(e.attempt for e in got) == [1, 2, 2]  # taken back: one more attempt


async def test_an_owners_row_no_greenroom_wrote_does_not_stop_the_open(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    await schema(path)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO greenroom_mailbox_owners VALUES (7, 'pid', 'host', 0, 'never')",
        )
        insert(db, "a", 1, good(0), owner=7)
    got, _ = await deliver_all(path, 1)  # its holder counts as dead
    assert [e.attempt for e in got] == [2]


# -- the write side ----------------------------------------------------------------


def odd(**fields: object) -> gr.Envelope:
    envelope = make_envelope("a", Item(sender=9, seq=0))
    for name, value in fields.items():
        setattr(envelope, name, value)
    return envelope


UNSTORABLE = {
    "sender with a lone surrogate": {"sender": "w\udc80"},
    "id past 64 bits": {"id": 2**64},
    "created_at NaN (NOT NULL)": {"created_at": math.nan},
}


async def test_a_put_sqlite_cannot_store_fails_alone_and_the_batch_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        waiter = Waiter(box)
        outcomes: dict[str, BaseException | None] = {}

        async def put(name: str, envelope: gr.Envelope) -> None:
            try:
                await box.put(envelope)
            except Exception as exc:
                outcomes[name] = exc
            else:
                outcomes[name] = None

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:  # one group commit for all
                for seq in range(3):
                    tg.start_soon(put, f"good {seq}", make_envelope("a", Item(sender=0, seq=seq)))
                for name, fields in UNSTORABLE.items():
                    tg.start_soon(put, name, odd(**fields))
            got = await waiter.take_all(3)
            for name in UNSTORABLE:
                error = outcomes[name]
                assert isinstance(error, gr.InvalidMessage), (name, error)
                assert "cannot be stored" in str(error)
            assert [outcomes[f"good {seq}"] for seq in range(3)] == [None] * 3
            assert sorted(s for _, s in seqs(got)) == [0, 1, 2]
            # the writer still serves
            await box.put(make_envelope("a", Item(sender=0, seq=3)))
            assert seqs([await waiter.take()]) == [(0, 3)]
            assert len(box) == 4  # the refused ones are not counted
    assert count(path) == 4


async def test_a_fire_and_forget_put_sqlite_cannot_store_is_dead_lettered(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        assert box.offer(odd(sender="w\udc80"))
        await box.put(make_envelope("a", Item(sender=0, seq=1)))
        await boxes.flush()
        [record] = await boxes.dead_letters.query()
        assert record.letter.reason == "invalid_message"
        assert record.letter.error.type == "greenroom.InvalidMessage"
        assert record.letter.envelope.sender == "w\\udc80"  # escaped, so it could be stored
        assert len(box) == 1


class Work(gr.Message):
    n: int


class Echoing(gr.Actor):
    """Fails with an error that echoes bad input (a lone surrogate) for n < 0."""

    def __init__(self, seen: list[int]) -> None:
        self.seen = seen

    @gr.handler
    async def work(self, msg: Work) -> int:
        if msg.n < 0:
            raise ValueError(f"bad input {chr(0xDC80)!s} in {msg.n}")
        self.seen.append(msg.n)
        return msg.n


async def test_a_dead_letter_whose_error_text_sqlite_cannot_store_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    seen: list[int] = []
    once = gr.RetryPolicy(max_attempts=1, backoff=gr.Backoff(initial=0, maximum=0, jitter=0))
    async with (
        SqliteMailboxes(path) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(
            Echoing, name="e", args=(seen,), mailbox=gr.MailboxConfig(kind="durable"), retry=once
        )
        with pytest.raises(gr.HandlerError):
            await ref.ask(Work(n=-1), timeout=5)
        assert await ref.ask(Work(n=1), timeout=5) == 1  # the writer still serves
        await boxes.flush()
        [record] = await boxes.dead_letters.query()
        assert "bad input \\udc80 in -1" in record.letter.error.message
    assert seen == [1]
    assert count(path) == 0
    assert count(path, LETTERS) == 1


async def test_a_listener_that_raises_does_not_stop_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    calls: list[int] = []

    def listener() -> None:
        calls.append(1)
        raise RuntimeError("listener bug")

    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        box.set_listener(listener)
        await box.put(make_envelope("a", Item(sender=0, seq=0)))
        other = boxes.create("b", CONFIG, (Item,))
        waiter = Waiter(other)
        await other.put(make_envelope("b", Item(sender=0, seq=1)))
        assert seqs([await waiter.take()]) == [(0, 1)]
        assert calls == [1]
        got = box.get_nowait()
        assert got is not None
        assert seqs([got]) == [(0, 0)]  # buffered despite the listener's failure


async def test_a_letter_added_with_odd_values_is_written_well_typed(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path) as boxes:
        envelope = odd(id=2**70, trace_id=-(2**70), created_at=math.inf, deadline=math.nan)
        boxes.dead_letters.add(
            gr.DeadLetter(
                envelope=envelope,
                actor="a\udc80",
                reason="handler_failed",
                error=gr.ErrorInfo(type="X", message="m\udc80", traceback="t\udc80"),
                at=math.nan,
            )
        )
        await boxes.flush()
        [record] = await boxes.dead_letters.query()
    letter = record.letter
    assert (letter.envelope.id, letter.envelope.trace_id) == (0, 0)
    assert letter.actor == "a\\udc80"
    assert letter.error.message == "m\\udc80"
    assert letter.envelope.deadline is None
    assert letter.at <= time.time()


async def test_rows_that_name_no_actor_are_dead_lettered_on_open(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    await schema(path)
    with sqlite3.connect(path) as db:
        insert(db, b"\x00a", 2, good(1))  # a blob (a number would be stored as text)
        insert(db, Text(b"a\xff"), 3, good(2))  # text that is not UTF-8
        insert(db, "a", 4, good(3))
    got, letters = await deliver_all(path, 1)
    assert seqs(got) == [(0, 3)]
    assert sorted(letter.envelope.id for letter in letters) == [2, 3]
    for letter in letters:
        assert letter.reason == "undeliverable"
        assert letter.error.type == "greenroom.UndecodableMessage"
        assert "names no actor" in letter.error.message
    assert count(path) == 0
