"""The Mailbox protocol's guarantees, checked against every kind: memory and sqlite."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenroom as gr
from tests.mailbox._kinds import KINDS, Item, env, harness

pytestmark = pytest.mark.anyio


def seq_of(envelope: gr.Envelope) -> int:
    assert isinstance(envelope.body, Item)
    return envelope.body.seq


@pytest.mark.parametrize("kind", KINDS)
async def test_a_put_message_is_handed_out_once_with_its_envelope(
    kind: str, tmp_path: Path
) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(4)
        sent = env(seq=7)
        await box.put(sent)
        got = await h.take(box)
        assert (got.id, got.trace_id, got.attempt, got.body) == (
            sent.id,
            sent.trace_id,
            1,
            sent.body,
        )
        box.ack(got)
        await h.settle(box)
        assert box.get_nowait() is None


@pytest.mark.parametrize("kind", KINDS)
async def test_messages_of_one_sender_come_out_in_the_order_they_were_put(
    kind: str, tmp_path: Path
) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(64)
        for seq in range(20):
            await box.put(env(sender=1, seq=seq))
        taken = []
        for _ in range(20):
            got = await h.take(box)
            taken.append(seq_of(got))
            box.ack(got)
        assert taken == list(range(20))


@pytest.mark.parametrize("kind", KINDS)
async def test_requeue_puts_a_handed_out_message_back_at_the_head(
    kind: str, tmp_path: Path
) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(4)
        await box.put(env(seq=1))
        await box.put(env(seq=2))
        first = await h.take(box)
        first.attempt += 1
        box.requeue(first)
        again = await h.take(box)
        assert (seq_of(again), again.attempt) == (1, 2)
        box.ack(again)
        assert seq_of(await h.take(box)) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_put_nowait_past_capacity_raises_mailbox_full_and_offer_says_false(
    kind: str, tmp_path: Path
) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(2)
        box.put_nowait(env(seq=1))
        assert box.offer(env(seq=2))
        assert not box.offer(env(seq=3))
        with pytest.raises(gr.MailboxFull) as info:
            box.put_nowait(env(seq=4))
        assert info.value.capacity == 2
        assert box.capacity == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_a_full_mailbox_makes_put_wait_until_a_message_is_taken_and_acked(
    kind: str, tmp_path: Path
) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(1)
        await box.put(env(seq=1))
        entered = anyio.Event()
        done = anyio.Event()

        async def sender() -> None:
            entered.set()
            await box.put(env(seq=2))
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            await entered.wait()
            await h.settle(box)
            assert not done.is_set()
            assert box.statistics().waiting_senders == 1
            first = await h.take(box)
            box.ack(first)
            with anyio.fail_after(5):
                await done.wait()
        assert seq_of(await h.take(box)) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_close_refuses_puts_and_fails_waiting_senders(kind: str, tmp_path: Path) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(1)
        await box.put(env(seq=1))
        failed = anyio.Event()

        async def sender() -> None:
            with pytest.raises(gr.MailboxClosed):
                await box.put(env(seq=2))
            failed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(sender)
            await anyio.lowlevel.checkpoint()
            box.close()
            with anyio.fail_after(5):
                await failed.wait()
        assert box.closed
        with pytest.raises(gr.MailboxClosed):
            box.put_nowait(env(seq=3))
        with pytest.raises(gr.MailboxClosed):
            await box.put(env(seq=3))


@pytest.mark.parametrize("kind", KINDS)
async def test_the_listener_is_called_when_a_message_arrives_in_an_empty_mailbox(
    kind: str, tmp_path: Path
) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(8)
        await box.put(env(seq=1))
        await box.put(env(seq=2))
        await h.settle(box)
        assert len(h.listens) == 1
        box.ack(await h.take(box))
        box.ack(await h.take(box))
        await box.put(env(seq=3))
        await h.take(box)
        assert len(h.listens) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_statistics_count_puts_and_gets(kind: str, tmp_path: Path) -> None:
    async with harness(kind, tmp_path) as h:
        box = h.box(8)
        for seq in range(3):
            await box.put(env(seq=seq))
        await h.settle(box)
        box.ack(await h.take(box))
        stats = box.statistics()
        assert (stats.capacity, stats.put_total, stats.get_total, stats.depth) == (8, 3, 1, 2)
        assert stats.high_water == 3


@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=40))
def test_fifo_per_sender_holds_under_any_interleaving(
    kind: str, tmp_path: Path, schedule: list[int]
) -> None:
    async def main() -> None:
        async with harness(kind, Path(tempfile.mkdtemp(dir=tmp_path))) as h:
            box = h.box(3)
            counters = [0, 0, 0, 0]
            out: dict[int, list[int]] = {s: [] for s in range(4)}

            def record(got: gr.Envelope) -> None:
                assert isinstance(got.body, Item)
                out[got.body.sender].append(got.body.seq)
                box.ack(got)

            async def send(sender: int, seq: int) -> None:
                await box.put(env(sender, seq))

            async with anyio.create_task_group() as tg:
                for sender in schedule:
                    seq = counters[sender]
                    counters[sender] += 1
                    tg.start_soon(send, sender, seq)
                    await anyio.lowlevel.checkpoint()
                    if seq % 2 and (got := box.get_nowait()) is not None:
                        record(got)
                while sum(map(len, out.values())) < len(schedule):
                    record(await h.take(box))
            for sender, seqs in out.items():
                assert seqs == list(range(counters[sender])), sender

    anyio.run(main, backend="asyncio")
