"""A full disk: puts fail typed, what needs no space still commits, and closing is bounded.

The disk is made full for real on the mailbox's own connection with
``PRAGMA max_page_count``: sqlite then answers ``SQLITE_FULL`` to any change
that needs a new page, exactly as on a full filesystem (same error, same
path through the writer); deletes and updates in place still fit.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiosqlite
import anyio
import pytest

import greenroom as gr
from greenroom.mailbox import (
    MailboxCloseIncomplete,
    MailboxUnavailable,
    SqliteMailboxes,
    make_envelope,
)
from tests.mailbox._rows import MESSAGES, count
from tests.mailbox.test_sqlite_mailbox import Waiter

pytestmark = pytest.mark.anyio
CONFIG = gr.MailboxConfig(capacity=256)
CLOSE_TIMEOUT = 1.0


class Blob(gr.Message):
    n: int
    data: str = ""


def big(n: int) -> gr.Envelope:
    return make_envelope("a", Blob(n=n, data="x" * 20_000))  # overflow pages: always new ones


async def fill_the_disk(boxes: SqliteMailboxes) -> None:
    async def full(db: aiosqlite.Connection) -> None:
        [(pages,)] = await db.execute_fetchall("PRAGMA page_count")
        await db.execute(f"PRAGMA max_page_count = {pages}")

    await boxes._writer.run_admin(full)


async def fill_and_leave(path: Path, left: list[float]) -> None:
    """Commit 20, ack 5, fill the disk, then queue what cannot be written, and leave."""
    async with SqliteMailboxes(path, close_timeout=CLOSE_TIMEOUT) as boxes:
        box = boxes.create("a", CONFIG, (Blob,))
        waiter = Waiter(box)
        for n in range(20):
            await box.put(make_envelope("a", Blob(n=n)))
        taken = await waiter.take_all(10)
        for envelope in taken[:5]:
            box.ack(envelope)
        await boxes.flush()
        await fill_the_disk(boxes)
        with pytest.raises(MailboxUnavailable) as refused:
            await box.put(big(100))
        assert "full" in refused.value.reason
        for envelope in taken[5:8]:  # acks need no space: they still commit
            box.ack(envelope)
        for n in range(3):  # fire-and-forget: retried until the close gives up
            assert box.offer(big(200 + n))
        letter = gr.DeadLetter(
            envelope=big(300),
            actor="a",
            reason="handler_failed",
            error=gr.ErrorInfo(type="X", message="m"),
        )
        boxes.dead_letters.add(letter)
        with anyio.fail_after(10):
            while count(path) > 12:  # 20 - 8 acked
                await boxes.flush()
        left.append(time.monotonic())


async def test_leaving_on_a_full_disk_returns_within_close_timeout_and_keeps_the_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    left: list[float] = []
    with anyio.fail_after(30), pytest.raises(MailboxCloseIncomplete) as closing:
        await fill_and_leave(path, left)
    elapsed = time.monotonic() - left[0]
    assert elapsed < CLOSE_TIMEOUT + 1.0, elapsed
    error = closing.value
    assert (error.puts, error.letters, error.acks) == (3, 1, 0)
    assert error.timeout == CLOSE_TIMEOUT
    assert "full" in error.reason
    assert error.leases_released  # an update in place: it fits
    assert "3 put(s) (lost)" in str(error)
    # What was committed survives; the leases were given back.
    assert count(path) == 12
    with sqlite3.connect(path) as db:
        owned = db.execute(f"SELECT count(*) FROM {MESSAGES} WHERE owner IS NOT NULL").fetchone()
    assert owned == (0,)
    async with SqliteMailboxes(path) as boxes:
        got = await Waiter(boxes.create("a", CONFIG, (Blob,))).take_all(12)
    assert sorted(e.body.n for e in got) == list(range(8, 20))  # type: ignore[attr-defined]
    print(
        f"\nfull disk: closed in {elapsed:.2f} s (close_timeout {CLOSE_TIMEOUT:g} s); not written: "
        f"{error.puts} puts, {error.acks} acks, {error.releases} releases, {error.letters} "
        f"letters; 12 of 12 committed messages delivered after reopening"
    )


class Boom(Exception):
    pass


async def fill_and_fail(path: Path) -> None:
    async with SqliteMailboxes(path, close_timeout=0.2) as boxes:
        box = boxes.create("a", CONFIG, (Blob,))
        await box.put(make_envelope("a", Blob(n=0)))
        await fill_the_disk(boxes)
        assert box.offer(big(1))
        raise Boom


async def test_leaving_with_an_error_of_its_own_keeps_that_error_and_is_bounded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    with anyio.fail_after(10), pytest.raises(Boom):
        await fill_and_fail(path)
    assert count(path) == 1


def test_close_timeout_is_checked() -> None:
    for bad in (0, -1.0, float("inf"), float("nan")):
        with pytest.raises(gr.UsageError, match="close_timeout"):
            SqliteMailboxes("x.db", close_timeout=bad)
