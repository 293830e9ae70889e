"""The memory mailbox on its own: bound, order, waiting senders, close."""

from __future__ import annotations

import asyncio

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import greenroom as gr
from greenroom.mailbox import MemoryMailbox, make_envelope


class Item(gr.Message):
    sender: int
    seq: int


def env(sender: int = 0, seq: int = 0) -> gr.Envelope:
    return make_envelope("box", Item(sender=sender, seq=seq))


def test_put_nowait_past_capacity_raises_mailbox_full_and_keeps_depth() -> None:
    box = MemoryMailbox(2, label="box")
    box.put_nowait(env(seq=1))
    box.put_nowait(env(seq=2))
    with pytest.raises(gr.MailboxFull) as info:
        box.put_nowait(env(seq=3))
    assert info.value.capacity == 2
    assert len(box) == 2
    stats = box.statistics()
    assert (stats.depth, stats.capacity, stats.put_total, stats.high_water) == (2, 2, 2, 2)


def test_get_nowait_returns_none_when_empty() -> None:
    assert MemoryMailbox(1).get_nowait() is None


def test_requeue_puts_message_back_at_the_head() -> None:
    box = MemoryMailbox(4)
    first, second = env(seq=1), env(seq=2)
    box.put_nowait(first)
    box.put_nowait(second)
    taken = box.get_nowait()
    assert taken is first
    box.requeue(first)
    assert box.get_nowait() is first
    assert box.get_nowait() is second


def test_listener_fires_only_when_an_empty_mailbox_gets_a_message() -> None:
    box = MemoryMailbox(4)
    calls: list[int] = []
    box.set_listener(lambda: calls.append(len(box)))
    box.put_nowait(env(seq=1))
    box.put_nowait(env(seq=2))
    assert calls == [1]
    box.get_nowait()
    box.get_nowait()
    box.put_nowait(env(seq=3))
    assert calls == [1, 1]


def test_close_refuses_puts_and_returns_what_was_left() -> None:
    box = MemoryMailbox(4)
    left = env(seq=1)
    box.put_nowait(left)
    assert box.close() == [left]
    assert box.closed
    with pytest.raises(gr.MailboxClosed):
        box.put_nowait(env())


@pytest.mark.anyio
async def test_full_mailbox_makes_senders_wait_in_arrival_order() -> None:
    box = MemoryMailbox(1)
    box.put_nowait(env(seq=0))
    order: list[int] = []

    async def sender(seq: int, started: anyio.Event) -> None:
        started.set()
        await box.put(env(seq=seq))
        order.append(seq)

    async with anyio.create_task_group() as tg:
        for seq in (1, 2, 3):
            started = anyio.Event()
            tg.start_soon(sender, seq, started)
            await started.wait()
            await anyio.lowlevel.checkpoint()
        assert box.statistics().waiting_senders == 3
        received = []
        with anyio.fail_after(5):
            while len(received) < 4:
                got = box.get_nowait()
                if got is None:
                    await anyio.lowlevel.checkpoint()
                    continue
                assert isinstance(got.body, Item)
                received.append(got.body.seq)
    assert received == [0, 1, 2, 3]
    assert order == [1, 2, 3]


@pytest.mark.anyio
async def test_a_new_sender_cannot_barge_ahead_of_waiting_senders() -> None:
    box = MemoryMailbox(1)
    box.put_nowait(env(seq=0))

    async def waiting() -> None:
        await box.put(env(seq=1))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiting)
        await anyio.lowlevel.checkpoint()
        box.get_nowait()  # frees the slot, promised to the waiting sender
        with pytest.raises(gr.MailboxFull):
            box.put_nowait(env(seq=2))
    got = box.get_nowait()
    assert got is not None
    assert isinstance(got.body, Item)
    assert got.body.seq == 1


@pytest.mark.anyio
async def test_cancelled_waiting_sender_enqueues_nothing_and_passes_its_slot_on() -> None:
    box = MemoryMailbox(1)
    box.put_nowait(env(seq=0))
    # Plain asyncio tasks: task.cancel() lands even after the slot was promised,
    # which is the case under test (anyio would let the put complete instead).
    first = asyncio.create_task(box.put(env(seq=1)))
    await asyncio.sleep(0)
    second = asyncio.create_task(box.put(env(seq=2)))
    await asyncio.sleep(0)
    assert box.statistics().waiting_senders == 2
    box.get_nowait()  # the freed slot is promised to `first`...
    first.cancel()  # ...which is cancelled before it can use it
    with anyio.fail_after(5):
        await second
    with pytest.raises(asyncio.CancelledError):
        await first
    seqs = []
    while (got := box.get_nowait()) is not None:
        assert isinstance(got.body, Item)
        seqs.append(got.body.seq)
    assert seqs == [2]


@pytest.mark.anyio
async def test_close_fails_waiting_senders_with_mailbox_closed() -> None:
    box = MemoryMailbox(1)
    box.put_nowait(env())
    failed = anyio.Event()

    async def sender() -> None:
        with pytest.raises(gr.MailboxClosed):
            await box.put(env())
        failed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await anyio.lowlevel.checkpoint()
        box.close()
        with anyio.fail_after(5):
            await failed.wait()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60))
def test_fifo_per_sender_under_any_interleaving_of_senders(schedule: list[int]) -> None:
    """Property: whatever the interleaving, each sender's messages come out in order."""

    async def main() -> None:
        box = MemoryMailbox(3)
        counters = [0, 0, 0, 0]
        out: dict[int, list[int]] = {s: [] for s in range(4)}

        async def send(sender: int, seq: int) -> None:
            await box.put(env(sender, seq))

        async with anyio.create_task_group() as tg:
            for sender in schedule:
                seq = counters[sender]
                counters[sender] += 1
                tg.start_soon(send, sender, seq)
                await anyio.lowlevel.checkpoint()
                # drain now and then, so senders really queue up and interleave
                if seq % 2:
                    got = box.get_nowait()
                    if got is not None:
                        assert isinstance(got.body, Item)
                        out[got.body.sender].append(got.body.seq)
            with anyio.fail_after(5):
                while sum(map(len, out.values())) < len(schedule):
                    got = box.get_nowait()
                    if got is None:
                        await anyio.lowlevel.checkpoint()
                        continue
                    assert isinstance(got.body, Item)
                    out[got.body.sender].append(got.body.seq)
        for sender, seqs in out.items():
            assert seqs == list(range(counters[sender])), sender

    anyio.run(main, backend="asyncio")


class Fixed(gr.Message):
    a: int
    b: float
    c: bool | None = None


class Variable(gr.Message):
    text: str
    data: bytes | None = None
    n: int = 0


class Nested(gr.Message):
    items: list[int]


def test_size_bound_covers_the_largest_encoding_of_fixed_size_messages() -> None:
    import msgspec

    from greenroom.mailbox import check_message, fixed_size

    bound = check_message(Fixed(a=0, b=0.0))
    assert bound is not None
    largest = Fixed(a=-(2**63), b=1.7976931348623157e308, c=True)
    assert len(msgspec.msgpack.encode(largest)) <= bound
    assert fixed_size(Fixed(a=0, b=0.0))
    assert not fixed_size(Variable(text="x"))
    assert check_message(Nested(items=[1])) is None  # unbounded: it must be encoded to know


@given(
    text=st.text(max_size=300),
    data=st.none() | st.binary(max_size=300),
    n=st.integers(min_value=-(2**63), max_value=2**64 - 1),
)
def test_size_bound_of_str_and_bytes_fields_covers_their_encoding(
    text: str, data: bytes | None, n: int
) -> None:
    import msgspec

    from greenroom.mailbox import check_message

    body = Variable(text=text, data=data, n=n)
    bound = check_message(body)
    assert bound is not None
    assert len(msgspec.msgpack.encode(body)) <= bound
