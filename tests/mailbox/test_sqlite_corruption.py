"""A durable mailbox file corrupted while a runtime runs: found, typed, nothing hangs.

The test damages pages of a real file under a running runtime: after 3,000
messages are written (and the WAL checkpointed into the file), the leaf
pages holding the second half of the messages table are overwritten with
garbage while the consumer is paused; when the mailbox's fetch or insert
reads one, sqlite says ``SQLITE_CORRUPT``. From then on every user of the
database gets :class:`MailboxCorrupted`, and every message is accounted for:
handled, still readable on an intact page (what ``.recover`` gets back), or
on a damaged page (lost).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import anyio
import msgspec
import pytest

import greenroom as gr
from greenroom.mailbox import MailboxCorrupted, SqliteMailbox, SqliteMailboxes, make_envelope
from tests.mailbox._kinds import Item
from tests.mailbox._rows import MESSAGES

pytestmark = pytest.mark.anyio
DURABLE = gr.MailboxConfig(kind="durable")
TOTAL = 3000
PAUSE_AT = 200
PAD = "P" * 900  # about one message per quarter page: 750 leaf pages


class Work(gr.Message):
    n: int
    pad: str = ""


class Worker(gr.Actor):
    """Records what it handles; waits at message ``PAUSE_AT`` until ``resume`` is set."""

    def __init__(self, seen: list[int], paused: anyio.Event, resume: anyio.Event) -> None:
        self.seen = seen
        self.paused = paused
        self.resume = resume

    @gr.handler
    async def work(self, msg: Work) -> int:
        self.seen.append(msg.n)
        if len(self.seen) == PAUSE_AT:
            self.paused.set()
            await self.resume.wait()
        return msg.n


def fill(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.executemany(
            f"INSERT INTO {MESSAGES} (actor, id, trace_id, attempt, created_at, body) "
            "VALUES ('w', ?, ?, 1, ?, ?)",
            [
                (n + 1, n + 1, time.time(), msgspec.msgpack.encode(Work(n=n, pad=PAD)))
                for n in range(TOTAL)
            ],
        )
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every row in the file itself


def message_leaves(path: Path) -> tuple[int, list[int]]:
    """The page size, and the numbers (from 0) of the table-leaf pages holding messages."""
    data = path.read_bytes()
    size = int.from_bytes(data[16:18], "big") or 65536
    marker = PAD.encode()[:64]
    leaves = [
        number
        for number in range(1, len(data) // size)
        if data[number * size] == 0x0D and marker in data[number * size : (number + 1) * size]
    ]
    return size, leaves


def damage(path: Path, size: int, pages: list[int]) -> None:
    """Overwrite ``pages`` in place, with the file open by the running mailbox."""
    fd = os.open(path, os.O_RDWR)
    try:
        for number in pages:
            os.pwrite(fd, b"\xee" * size, number * size)
        os.fsync(fd)
    finally:
        os.close(fd)


def salvage(path: Path) -> tuple[set[int], int]:
    """The messages still readable row by row (``n`` of each), and how many rows are not."""
    readable: set[int] = set()
    unreadable = 0
    with sqlite3.connect(path) as db:
        for seq in range(1, TOTAL + 1):
            try:
                row = db.execute(f"SELECT body FROM {MESSAGES} WHERE seq = ?", (seq,)).fetchone()
            except sqlite3.DatabaseError:
                unreadable += 1
                continue
            if row is not None:
                readable.add(msgspec.msgpack.decode(row[0], type=Work).n)
    return readable, unreadable


async def run_and_damage(path: Path, seen: list[int], found: list[MailboxCorrupted]) -> None:
    """Run the worker on ``path``, damage the file under it, check what every user gets."""
    size, leaves = message_leaves(path)
    assert len(leaves) > 100
    paused, resume = anyio.Event(), anyio.Event()
    async with SqliteMailboxes(path, batch=64) as boxes:
        queue = boxes.create("q", gr.MailboxConfig(capacity=1), (Item,))
        await queue.put(make_envelope("q", Item(sender=0, seq=0)))
        async with gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt:
            ref = await rt.spawn(Worker, name="w", args=(seen, paused, resume), mailbox=DURABLE)
            await paused.wait()
            damage(path, size, leaves[len(leaves) // 2 :])
            outcomes: list[BaseException] = []

            async def wait_for_room() -> None:  # a sender waiting on a full mailbox
                try:
                    await queue.put(make_envelope("q", Item(sender=0, seq=1)))
                except Exception as exc:
                    outcomes.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait_for_room)
                resume.set()
                # The consumer reads on; the fetch that reaches a damaged page fails.
                while boxes.failure is None:
                    try:
                        await ref.tell(Work(n=-1))
                    except MailboxCorrupted as exc:
                        outcomes.append(exc)
                        break
                    await boxes.flush()
            failure = boxes.failure
            assert isinstance(failure, MailboxCorrupted)
            found.append(failure)
            assert failure.code.startswith("SQLITE_CORRUPT")
            assert failure.path == str(path)
            assert [type(e) for e in outcomes] == [MailboxCorrupted] * len(outcomes)
            assert len(outcomes) >= 1  # the waiting sender at least
            handled = len(seen)
            with pytest.raises(MailboxCorrupted):
                await ref.tell(Work(n=-2))
            with pytest.raises(MailboxCorrupted):
                await ref.ask(Work(n=-3), timeout=5)
            with pytest.raises(MailboxCorrupted):
                await boxes.dead_letters.query()
            with pytest.raises(MailboxCorrupted):
                boxes.create("late", DURABLE, (Work,))
            mailbox = rt._system.cells["w"].mailbox
            assert isinstance(mailbox, SqliteMailbox)
            assert mailbox.get_nowait() is None  # nothing more is handed out
            assert len(seen) == handled


async def test_corruption_found_while_running_fails_every_user_with_a_typed_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path):
        pass
    fill(path)
    seen: list[int] = []
    found: list[MailboxCorrupted] = []
    start = time.monotonic()
    with anyio.fail_after(30), pytest.raises(MailboxCorrupted) as leaving:
        await run_and_damage(path, seen, found)
    elapsed = time.monotonic() - start
    assert [leaving.value] == found  # leaving the block raises it too
    handled = [n for n in seen if n >= 0]
    assert len(handled) == len(set(handled)), "a message was handled twice"
    readable, unreadable = salvage(path)
    assert unreadable > 0
    # every message is accounted for: handled, readable on an intact page, or on a damaged one
    lost = TOTAL - len(set(handled) | readable)
    assert lost <= unreadable
    print(
        f"\ncorruption: {TOTAL} messages, {len(handled)} handled, {len(readable)} readable "
        f"on intact pages ({len(readable & set(handled))} of them handled, their acks not "
        f"written), {unreadable} rows on damaged pages (lost); failed in {elapsed:.2f} s"
    )


async def test_a_file_that_is_not_a_database_is_refused_on_open_as_corrupted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path) as boxes:
        await boxes.create("a", DURABLE, (Item,)).put(make_envelope("a", Item(sender=0, seq=0)))
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    damage(path, 100, [0])  # the header
    with anyio.fail_after(10), pytest.raises(MailboxCorrupted) as opened:
        async with SqliteMailboxes(path):
            pass
    assert opened.value.code in {"SQLITE_NOTADB", "SQLITE_CORRUPT"}
    assert ".recover" in str(opened.value)
