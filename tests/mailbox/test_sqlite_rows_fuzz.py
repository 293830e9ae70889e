"""Fuzz, end to end: hostile rows in a durable mailbox file never stop a runtime on it.

Each case writes good messages and hostile rows (bodies from ``hostile_bytes``,
as BLOB or as TEXT that need not be UTF-8; columns of the wrong type or out of
range; leases of no known holder) straight into the messages table, starts a
runtime on the file, and checks: every good message is handled exactly once,
every hostile row is handled once or is a dead letter with a typed error, no
row is left behind, the runtime answers an ask; then a second runtime on the
same file (a restart) starts and serves.
"""

from __future__ import annotations

import itertools
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes
from tests._fuzz import FUZZ_SETTINGS, hostile_bytes, record
from tests.mailbox._rows import LETTERS, Text, assert_well_typed, count, encode, insert, letters

BOUNDARY = "sqlite-mailbox-rows"
DURABLE = gr.MailboxConfig(kind="durable")
FIRST_HOSTILE = 1_000_000


class Work(gr.Message):
    n: int


GOOD = encode(Work(n=7))


class Worker(gr.Actor):
    def __init__(self, handled: list[int]) -> None:
        self.handled = handled

    @gr.handler
    async def work(self, msg: Work) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        self.handled.append(envelope.id)
        return msg.n


COLUMNS = (
    "id",
    "sender",
    "reply_to",
    "correlation_id",
    "trace_id",
    "parent_span_id",
    "attempt",
    "created_at",
    "deadline",
    "owner",
)
values = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.builds(Text, st.binary(min_size=1, max_size=8)),  # TEXT, often not UTF-8
    st.floats(),  # NaN is stored as NULL
    st.integers(-(2**63), 2**63 - 1),
)


@st.composite
def hostile_row(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["body", "text body", "column", "column", "actor"]))
    if kind == "actor":  # names no actor (a number or valid text would name another one)
        actor = st.binary(max_size=8) | st.builds(
            lambda b: Text(b"\xff" + b), st.binary(max_size=6)
        )
        return {"body": GOOD, "actor": draw(actor)}
    if kind == "body":
        return {"body": draw(hostile_bytes(GOOD))}
    if kind == "text body":
        return {"body": Text(draw(hostile_bytes(GOOD)))}
    return {"body": GOOD, draw(st.sampled_from(COLUMNS)): draw(values)}


_files = itertools.count()


def write_rows(path: Path, hostile: list[dict[str, Any]]) -> tuple[set[int], list[int]]:
    """Good rows (ids) around the hostile ones; which hostile rows went in (their ids)."""
    good: set[int] = set()
    written: list[int] = []
    with sqlite3.connect(path) as db:
        for index, columns in enumerate(hostile):
            good_id = 1 + index
            insert(db, "w", good_id, encode(Work(n=index)))
            good.add(good_id)
            columns = dict(columns)
            ident = columns.pop("id", FIRST_HOSTILE + index)
            body = columns.pop("body")
            actor = columns.pop("actor", "w")
            db.execute("SAVEPOINT hostile")
            try:
                insert(db, actor, ident, body, **columns)
            except sqlite3.IntegrityError:  # NULL (or NaN) in a NOT NULL column, a taken id
                db.execute("ROLLBACK TO hostile")
            else:
                written.append(ident)
            db.execute("RELEASE hostile")
        last = 1 + len(hostile)
        insert(db, "w", last, encode(Work(n=-1)))
        good.add(last)
    return good, written


async def run_once(path: Path, handled: list[int]) -> None:
    async with (
        SqliteMailboxes(path, batch=4) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(Worker, name="w", args=(handled,), mailbox=DURABLE)
        with anyio.fail_after(20):
            while count(path) > 0:  # every row handled and acked, or dead-lettered
                await boxes.flush()
            assert await ref.ask(Work(n=5), timeout=5) == 5  # still serving


@settings(parent=FUZZ_SETTINGS, max_examples=50)
@given(hostile=st.lists(hostile_row(), min_size=1, max_size=6))
def test_hostile_rows_are_handled_or_dead_lettered_and_never_stop_the_runtime(
    tmp_path: Path, hostile: list[dict[str, Any]]
) -> None:
    path = tmp_path / f"m{next(_files)}.db"
    anyio.run(lambda: schema(path))
    good, written = write_rows(path, hostile)
    handled: list[int] = []
    try:
        anyio.run(run_once, path, handled)
    except Exception:
        for _ in written:
            record(BOUNDARY, "escaped")
        raise
    handled.pop()  # the ask of run_once
    assert len(handled) == len(set(handled)), "a message was handled twice"
    assert good <= set(handled), "a good message was lost"
    hostile_handled = [ident for ident in handled if ident not in good]
    stored = letters(path)
    for letter in stored:
        assert_well_typed(letter)
        reasons = {b"invalid_message", b"unknown_message", b"too_large", b"undeliverable"}
        assert letter["reason"] in reasons
        assert letter["error_type"].startswith(b"greenroom."), letter  # type: ignore[union-attr]
    assert len(hostile_handled) + len(stored) == len(written)
    for _ in hostile_handled:
        record(BOUNDARY, "accepted")
    for _ in stored:
        record(BOUNDARY, "typed")
    # A restart on the same file starts, finds nothing left, and serves.
    again: list[int] = []
    anyio.run(run_once, path, again)
    assert len(again) == 1
    assert count(path, LETTERS) == len(stored)


async def schema(path: Path) -> None:
    async with SqliteMailboxes(path):
        pass


pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
