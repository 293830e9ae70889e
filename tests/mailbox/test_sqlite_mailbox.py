"""What only the durable mailbox promises: on disk, leases, redelivery, dedupe, the bound."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

import greenroom as gr
from greenroom.mailbox import SqliteMailbox, SqliteMailboxes, make_envelope
from tests.mailbox._kinds import Item, env

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
MESSAGES = "greenroom_mailbox_messages"
CONFIG = gr.MailboxConfig(capacity=64)


class Waiter:
    """Takes messages from a mailbox, waiting on its listener (never on a clock)."""

    def __init__(self, box: SqliteMailbox) -> None:
        self.box = box
        self._event = anyio.Event()
        box.set_listener(self._arrived)

    def _arrived(self) -> None:
        self._event.set()

    async def take(self, timeout: float = 5.0) -> gr.Envelope:
        with anyio.fail_after(timeout):
            while (got := self.box.get_nowait()) is None:
                self._event = anyio.Event()
                await self._event.wait()
            return got

    async def take_all(self, count: int) -> list[gr.Envelope]:
        return [await self.take() for _ in range(count)]


def rows(path: Path, where: str = "", params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            f"SELECT actor, id, attempt, owner FROM {MESSAGES} {where} ORDER BY seq", params
        ).fetchall()


def seqs(envelopes: list[gr.Envelope]) -> list[tuple[int, int]]:
    out = []
    for envelope in envelopes:
        assert isinstance(envelope.body, Item)
        out.append((envelope.body.sender, envelope.body.seq))
    return out


async def test_put_returns_only_after_the_row_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        sent = env(seq=1)
        await box.put(sent)
        # Another connection sees it at once: it is committed, not just queued.
        assert [r[:3] for r in rows(path)] == [("a", sent.id, 1)]


async def test_offer_is_fire_and_forget_committed_by_the_next_group_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        waiter = Waiter(box)
        assert box.offer(env(seq=1))
        box.put_nowait(env(seq=2))
        assert rows(path) == []  # queued, not on disk yet
        got = await waiter.take_all(2)  # delivered only after their commit
        assert seqs(got) == [(0, 1), (0, 2)]
        assert len(rows(path)) == 2
        for envelope in got:
            box.ack(envelope)
    assert rows(path) == []


async def test_many_concurrent_puts_share_few_transactions(tmp_path: Path) -> None:
    async with SqliteMailboxes(tmp_path / "m.db", batch=100) as boxes:
        box = boxes.create("a", gr.MailboxConfig(capacity=1000), (Item,))
        async with anyio.create_task_group() as tg:
            for seq in range(300):
                tg.start_soon(box.put, env(seq=seq))
        stats = boxes.statistics()
        assert stats.rows >= 300
        assert stats.commits < 30
        assert stats.largest_batch >= 50


PUT_THEN_KILL = textwrap.dedent(
    """
    import os, signal, sys
    import anyio
    import greenroom as gr
    from greenroom.mailbox import SqliteMailboxes, make_envelope
    from tests.mailbox._kinds import Item

    async def main(path: str) -> None:
        boxes = SqliteMailboxes(path)
        await boxes.__aenter__()
        box = boxes.create("a", gr.MailboxConfig(capacity=100), (Item,))
        async with anyio.create_task_group() as tg:
            for seq in range(20):
                tg.start_soon(box.put, make_envelope("a", Item(sender=1, seq=seq)))
        await box.put(make_envelope("a", Item(sender=2, seq=0)))
        # Killed right after put returns: no close, no checkpoint, no flush.
        os.kill(os.getpid(), signal.SIGKILL)

    anyio.run(main, sys.argv[1])
    """
)


@pytest.mark.slow
async def test_a_put_message_survives_sigkill_and_is_delivered_after_reopen(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    with anyio.fail_after(60):
        done = await anyio.run_process(
            [sys.executable, "-c", PUT_THEN_KILL, str(path)], cwd=ROOT, check=False
        )
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()
    async with SqliteMailboxes(path) as boxes:
        waiter = Waiter(boxes.create("a", gr.MailboxConfig(capacity=100), (Item,)))
        got = await waiter.take_all(21)
        assert sorted(seqs(got)) == sorted([(1, s) for s in range(20)] + [(2, 0)])
        # The dead process had leased its own messages as it inserted them: each
        # counts one attempt more now, and none is lost.
        assert {envelope.attempt for envelope in got} == {2}
        assert boxes.statistics().reclaimed == 21


async def test_close_leaves_the_messages_for_the_next_incarnation_in_fifo_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    sent = [env(sender=n % 3, seq=n // 3) for n in range(30)]
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        for envelope in sent:
            await box.put(envelope)
        handed_out = await Waiter(box).take()  # handed out, never acked
        assert box.close() == []
    async with SqliteMailboxes(path, batch=7) as boxes:  # small pages: several fetches
        waiter = Waiter(boxes.create("a", CONFIG, (Item,)))
        got = await waiter.take_all(30)
    assert [e.id for e in got] == [e.id for e in sent]
    assert got[0].id == handed_out.id
    assert [e.attempt for e in got] == [2] + [1] * 29  # only the handed-out one counts


async def test_a_new_incarnation_in_the_same_process_gets_the_messages_of_the_closed_one(
    tmp_path: Path,
) -> None:
    async with SqliteMailboxes(tmp_path / "m.db") as boxes:
        first = boxes.create("a", CONFIG, (Item,))
        for seq in range(5):
            await first.put(env(seq=seq))
        taken = await Waiter(first).take()
        first.close()
        second = boxes.create("a", CONFIG, (Item,))
        await second.put(env(seq=5))  # behind the five left by the first
        got = await Waiter(second).take_all(6)
        assert [s for _, s in seqs(got)] == [0, 1, 2, 3, 4, 5]
        assert got[0].id == taken.id
        assert got[0].attempt == 2


def fake_holder(path: Path, owner: int, *, pid: int, host: str, expires_at: float) -> None:
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO greenroom_mailbox_owners VALUES (?, ?, ?, ?, ?)",
            (owner, pid, host, time.time(), expires_at),
        )
        db.execute(f"UPDATE {MESSAGES} SET owner = ?", (owner,))


async def put_and_leave(path: Path, count: int) -> list[gr.Envelope]:
    sent = [env(seq=n) for n in range(count)]
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        for envelope in sent:
            await box.put(envelope)
    return sent


async def test_an_expired_lease_is_delivered_again_with_attempt_incremented(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    sent = await put_and_leave(path, 3)
    # A live-looking holder elsewhere, whose heartbeat runs out a moment from now.
    fake_holder(path, 77, pid=1, host="elsewhere", expires_at=time.time() + 0.3)
    async with SqliteMailboxes(path, lease=5.0, poll=0.05) as boxes:
        waiter = Waiter(boxes.create("a", CONFIG, (Item,)))
        assert boxes.statistics().reclaimed == 0  # not yet: the lease is valid
        got = await waiter.take_all(3)  # after it expires, found by the poll
        assert boxes.statistics().reclaimed == 3
    assert [e.id for e in got] == [e.id for e in sent]
    assert [e.attempt for e in got] == [2, 2, 2]


async def test_leases_of_a_dead_process_on_this_host_are_taken_back_on_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    sent = await put_and_leave(path, 2)
    dead_pid = await _dead_pid()
    fake_holder(path, 78, pid=dead_pid, host=socket.gethostname(), expires_at=time.time() + 3600)
    async with SqliteMailboxes(path) as boxes:
        assert boxes.statistics().reclaimed == 2  # at once, not an hour later
        got = await Waiter(boxes.create("a", CONFIG, (Item,))).take_all(2)
    assert [(e.id, e.attempt) for e in got] == [(e.id, 2) for e in sent]


async def _dead_pid() -> int:
    process = await anyio.open_process([sys.executable, "-c", "import os; print(os.getpid())"])
    async with process:
        assert process.stdout is not None
        output = b""
        async for chunk in process.stdout:
            output += chunk
        await process.wait()
    pid = int(output)
    assert not _alive(pid)
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_an_envelope_id_is_enqueued_once(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    sent = env(seq=1)
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        await box.put(sent)
        await box.put(sent)
        assert box.offer(sent)
        assert len(box) == 1
    assert len(rows(path)) == 1
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", CONFIG, (Item,))
        # Re-sent before the backlog is loaded: the database refuses the copy.
        resent = make_envelope("a", Item(sender=0, seq=1))
        resent.id = sent.id
        await box.put(resent)
        waiter = Waiter(box)
        got = await waiter.take()
        box.ack(got)
        await box.put(env(seq=2))
        after = await waiter.take()
        assert got.id == sent.id
        assert seqs([after]) == [(0, 2)]
        assert len(box) == 1


async def test_the_bound_is_enforced_on_disk_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    config = gr.MailboxConfig(capacity=3)
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", config, (Item,))
        for seq in range(3):
            await box.put(env(seq=seq))
        assert not box.offer(env(seq=3))
    async with SqliteMailboxes(path) as boxes:
        box = boxes.create("a", config, (Item,))
        assert len(box) == 3
        assert not box.offer(env(seq=3))
        with pytest.raises(gr.MailboxFull):
            box.put_nowait(env(seq=3))
        waiter = Waiter(box)
        done = anyio.Event()

        async def sender() -> None:
            await box.put(env(seq=3))
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            first = await waiter.take()
            assert not done.is_set()
            box.ack(first)  # frees one unacked row: the waiting put goes in
            with anyio.fail_after(5):
                await done.wait()
        rest = await waiter.take_all(3)
        assert [s for _, s in seqs([first, *rest])] == [0, 1, 2, 3]


async def test_a_body_over_the_size_limit_is_refused_on_put(tmp_path: Path) -> None:
    class Big(gr.Message):
        text: str

    async with SqliteMailboxes(tmp_path / "m.db", max_message_bytes=100) as boxes:
        box = boxes.create("a", CONFIG, (Big,))
        with pytest.raises(gr.MessageTooLarge):
            await box.put(make_envelope("a", Big(text="x" * 200)))
        assert len(box) == 0


async def test_a_reopened_database_with_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    async with SqliteMailboxes(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO greenroom_mailbox_schema VALUES (999, 0)")
    with pytest.raises(gr.RuntimeFailure, match="newer"):
        async with SqliteMailboxes(path):
            pass


def test_bad_options_are_usage_errors(tmp_path: Path) -> None:
    for kwargs in ({"batch": 0}, {"lease": 1.0, "poll": 2.0}, {"max_message_bytes": 0}):
        with pytest.raises(gr.UsageError):
            SqliteMailboxes(tmp_path / "m.db", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(gr.UsageError):
        SqliteMailboxes(":memory:")


async def test_create_on_a_closed_factory_raises_mailbox_closed(tmp_path: Path) -> None:
    async with SqliteMailboxes(tmp_path / "m.db") as boxes:
        box = boxes.create("a", CONFIG, (Item,))
    assert box.closed
    with pytest.raises(gr.MailboxClosed):
        boxes.create("a", CONFIG, (Item,))
    with pytest.raises(gr.MailboxClosed):
        await box.put(env())
