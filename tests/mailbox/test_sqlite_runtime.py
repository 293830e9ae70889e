"""The runtime on durable mailboxes: handling, retries, dead letters, redrive, mixing kinds."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import anyio
import pytest

import greenroom as gr
from greenroom.mailbox import SqliteMailbox, SqliteMailboxes

pytestmark = pytest.mark.anyio
DURABLE = gr.MailboxConfig(kind="durable")
NO_BACKOFF = gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class Work(gr.Message):
    n: int


class Flaky(Exception):
    pass


class Worker(gr.Actor):
    """Fails the first ``failures[n]`` attempts at ``Work(n)``; records what it handled."""

    def __init__(self, seen: list[tuple[int, int]], failures: dict[int, int], done: anyio.Event):
        self.seen = seen
        self.failures = failures
        self.done = done

    @gr.handler
    async def work(self, msg: Work) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        if self.failures.get(msg.n, 0) >= envelope.attempt:
            raise Flaky(f"attempt {envelope.attempt} at {msg.n}")
        self.seen.append((msg.n, envelope.attempt))
        self.done.set()
        return msg.n * 10


def count_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone()
    return int(count)


async def test_an_actor_on_a_durable_mailbox_handles_tells_and_asks(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    seen: list[tuple[int, int]] = []
    async with (
        SqliteMailboxes(path) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(Worker, name="w", args=(seen, {}, anyio.Event()), mailbox=DURABLE)
        assert isinstance(rt._system.cells["w"].mailbox, SqliteMailbox)
        for n in range(10):
            await ref.tell(Work(n=n))
        assert await ref.ask(Work(n=10), timeout=5) == 100
        assert seen == [(n, 1) for n in range(11)]
        memory = await rt.spawn(Worker, name="m", args=([], {}, anyio.Event()))
        assert await memory.ask(Work(n=1), timeout=5) == 10  # kinds mix in one system
    assert count_rows(path) == 0


async def test_a_failing_message_is_retried_with_its_attempt_and_handled(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    async with (
        SqliteMailboxes(tmp_path / "m.db") as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(
            Worker,
            name="w",
            args=(seen, {1: 2}, anyio.Event()),
            mailbox=DURABLE,
            retry=gr.RetryPolicy(max_attempts=3, backoff=NO_BACKOFF),
        )
        assert await ref.ask(Work(n=1), timeout=5) == 10
        assert seen == [(1, 3)]


async def test_past_its_retry_policy_a_message_moves_to_the_durable_dead_letter_table(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    before = time.time()
    async with (
        SqliteMailboxes(path) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(
            Worker,
            name="w",
            args=([], {7: 99}, anyio.Event()),
            mailbox=DURABLE,
            retry=gr.RetryPolicy(max_attempts=2, backoff=NO_BACKOFF),
        )
        with pytest.raises(gr.HandlerError):
            await ref.ask(Work(n=7), timeout=5)
        await boxes.flush()  # the letter is written by the next commit
        letters = await boxes.dead_letters.query(
            actor="w", error_type="tests.mailbox.test_sqlite_runtime.Flaky"
        )
        assert len(letters) == 1
        assert count_rows(path) == 0  # acked in the same commit as the letter
    letter = letters[0].letter
    assert (letter.actor, letter.reason, letter.envelope.attempt) == ("w", "handler_failed", 2)
    assert letter.error.message == "attempt 2 at 7"
    assert letter.error.traceback is not None
    assert "Flaky" in letter.error.traceback
    assert letter.at >= before
    assert letter.envelope.body == {"type": "Work", "n": 7}
    # The sink's synchronous list (the DeadLetterSink protocol) sees it too.
    async with SqliteMailboxes(path) as boxes:
        assert [dl.envelope.id for dl in boxes.dead_letters.list(actor="w")] == [letter.envelope.id]
        assert boxes.dead_letters.list(actor="nobody") == []


async def test_a_redriven_letter_keeps_its_ids_and_reaches_the_fixed_handler(
    tmp_path: Path,
) -> None:
    failures = {3: 99}
    seen: list[tuple[int, int]] = []
    handled = anyio.Event()
    async with (
        SqliteMailboxes(tmp_path / "m.db") as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        ref = await rt.spawn(
            Worker,
            name="w",
            args=(seen, failures, handled),
            mailbox=DURABLE,
            retry=gr.RetryPolicy(max_attempts=1, backoff=NO_BACKOFF),
        )
        with pytest.raises(gr.HandlerError):
            await ref.ask(Work(n=3), timeout=5)
        await boxes.flush()  # the letter is written by the next commit
        [record] = await boxes.dead_letters.query()
        failures.clear()  # "fix the handler"
        [outcome] = await boxes.dead_letters.redrive([record.id])
        assert outcome.status == "redriven"
        assert outcome.envelope_id == record.letter.envelope.id
        with anyio.fail_after(5):
            await handled.wait()
        assert seen == [(3, 1)]
        assert await boxes.dead_letters.query() == []
        again = await boxes.dead_letters.redrive([record.id])
        assert [o.status for o in again] == ["not_found"]


async def test_dead_letters_filter_show_and_purge(tmp_path: Path) -> None:
    async with (
        SqliteMailboxes(tmp_path / "m.db") as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        one = gr.RetryPolicy(max_attempts=1, backoff=NO_BACKOFF)
        a = await rt.spawn(
            Worker, name="a", args=([], {1: 9}, anyio.Event()), mailbox=DURABLE, retry=one
        )
        b = await rt.spawn(
            Worker, name="b", args=([], {1: 9}, anyio.Event()), mailbox=DURABLE, retry=one
        )
        for ref in (a, b, a):
            with pytest.raises(gr.HandlerError):
                await ref.ask(Work(n=1), timeout=5)
        letters = boxes.dead_letters
        assert len(await letters.query()) == 3
        assert len(await letters.query(actor="a")) == 2
        assert len(await letters.query(reason="handler_failed", limit=1)) == 1
        assert await letters.query(since=time.time() + 60) == []
        first = (await letters.query())[0]
        shown = await letters.get(first.id)
        assert shown == first
        assert await letters.get(10_000) is None
        assert await letters.purge(actor="a") == 2
        assert await letters.purge([first.id]) == 0
        assert await letters.purge() == 1


class Hold(gr.Message):
    n: int


class Holder(gr.Actor):
    """Blocks on Hold until the gate opens; records what it finished."""

    def __init__(self, gate: anyio.Event, entered: anyio.Event, done: list[int]) -> None:
        self.gate = gate
        self.entered = entered
        self.done = done

    @gr.handler
    async def hold(self, msg: Hold) -> None:
        self.entered.set()
        await self.gate.wait()
        self.done.append(msg.n)


async def test_a_durable_message_cut_short_by_a_stop_stays_for_the_next_incarnation(
    tmp_path: Path,
) -> None:
    path = tmp_path / "m.db"
    gate, entered, done = anyio.Event(), anyio.Event(), []
    async with (
        SqliteMailboxes(path) as boxes,
        gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
    ):
        spec = gr.ChildSpec(
            actor=Holder, id="h", args=(gate, entered, done), mailbox=DURABLE, shutdown=0.01
        )
        sup = await rt.spawn(gr.SupervisorSpec(id="sup", children=(spec,)))
        await rt.ref("sup/h").tell(Hold(n=1))
        with anyio.fail_after(5):
            await entered.wait()
        await sup.terminate_child("h")  # cancels the handler mid-way
        await boxes.flush()
        # not a dead letter: the row is still on disk, unacked
        assert rt.dead_letters.list() == []
        assert count_rows(path) == 1
        gate.set()
        await sup.restart_child("h")
        with anyio.fail_after(5):
            while done != [1]:
                await anyio.lowlevel.checkpoint()
    assert count_rows(path) == 0
