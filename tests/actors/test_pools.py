"""Pools of identical workers: routing, order per key through restarts, resize, supervision."""

from __future__ import annotations

import collections
from typing import Any

import anyio
import pytest

import greenroom as gr
from tests.actors._support import NO_BACKOFF, Boom, Log, Recorder, statuses, wait_until

pytestmark = pytest.mark.anyio

LIFECYCLE = ("start", "restart", "stop")
Handled = list[tuple[str, str, int]]


class Job(gr.Message):
    key: str
    seq: int = 0
    crash: bool = False


class Worker(Recorder):
    """Records ``(worker, key, seq)`` for each job; waits on ``gate`` first if given."""

    def __init__(self, log: Log, handled: Handled, gate: anyio.Event | None = None) -> None:
        super().__init__(log)
        self.handled = handled
        self.gate = gate

    @gr.handler
    async def job(self, msg: Job) -> str:
        envelope = self.ctx.envelope
        assert envelope is not None
        if msg.crash and envelope.attempt == 1:
            self.log.record("crash", self.ctx.name)
            raise Boom(f"{msg.key}/{msg.seq}")
        if self.gate is not None:
            await self.gate.wait()
        self.handled.append((self.ctx.name, msg.key, msg.seq))
        return self.ctx.name


def pool(
    log: Log,
    handled: Handled,
    size: int,
    *,
    gate: anyio.Event | None = None,
    retry: gr.RetryPolicy | None = None,
    **options: Any,
) -> gr.PoolSpec:
    worker = gr.ChildSpec(
        actor=Worker,
        args=(log, handled, gate),
        retry=retry or gr.RetryPolicy(max_attempts=1, backoff=NO_BACKOFF),
    )
    return gr.PoolSpec(id="pool", worker=worker, size=size, **options)


def workers(n: int) -> list[str]:
    return [f"pool/{i}" for i in range(n)]


async def test_pool_starts_its_workers_in_order_and_stops_them_in_reverse() -> None:
    log, handled = Log(), Handled()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 3))
        assert isinstance(ref, gr.PoolRef)
        assert log == [("start", w) for w in workers(3)]
        infos = await ref.which_children()
        assert [(c.id, c.name, c.status) for c in infos] == [
            ("0", "pool/0", "running"),
            ("1", "pool/1", "running"),
            ("2", "pool/2", "running"),
        ]
        log.clear()
    assert log == [("stop", w) for w in reversed(workers(3))]


async def test_round_robin_spreads_messages_evenly_in_rotation() -> None:
    log, handled = Log(), Handled()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 3))
        picks = [await ref.ask(Job(key="k", seq=n)) for n in range(9)]
        assert collections.Counter(picks) == dict.fromkeys(workers(3), 3)
        assert picks[3:] == picks[:-3], "the same rotation every round"
        assert len(set(picks[:3])) == 3


async def test_least_loaded_picks_the_shortest_mailbox() -> None:
    log, handled = Log(), Handled()
    gate = anyio.Event()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 3, gate=gate, routing="least_loaded"))
        # Loads 4, 2 and 0, held by the gate.
        for name, n in (("pool/0", 4), ("pool/1", 2)):
            for seq in range(n):
                await rt.ref(name).tell(Job(key="direct", seq=seq))
        for seq in range(4):
            await ref.tell(Job(key="routed", seq=seq))
        gate.set()
        await wait_until(lambda: len(handled) == 10)
        routed = [(w, seq) for w, key, seq in handled if key == "routed"]
        # 4,2,0 -> pool/2 twice (4,2,2), then one each to pool/1 and pool/2 (4,3,3):
        # pool/0 never gets one, whatever breaks the tie.
        assert collections.Counter(w for w, _ in routed) == {"pool/1": 1, "pool/2": 3}
        assert [w for w, seq in routed if seq < 2] == ["pool/2", "pool/2"]


def key_orders(handled: Handled) -> tuple[dict[str, set[str]], dict[str, list[int]]]:
    owners: dict[str, set[str]] = collections.defaultdict(set)
    orders: dict[str, list[int]] = collections.defaultdict(list)
    for worker, key, seq in handled:
        owners[key].add(worker)
        orders[key].append(seq)
    return owners, orders


async def test_consistent_hash_keeps_each_key_on_one_worker_in_order() -> None:
    log, handled = Log(), Handled()
    keys = [f"conversation-{i}" for i in range(12)]
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 4, routing="consistent_hash", key="key"))
        for seq in range(6):
            for key in keys:
                await ref.tell(Job(key=key, seq=seq))
        await wait_until(lambda: len(handled) == 6 * len(keys))
        owners, orders = key_orders(handled)
        assert all(len(owners[k]) == 1 for k in keys)
        assert all(orders[k] == list(range(6)) for k in keys)
        assert len(set().union(*owners.values())) > 1, "keys are spread over workers"


async def test_consistent_hash_accepts_a_key_function() -> None:
    log, handled = Log(), Handled()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(
            pool(log, handled, 3, routing="consistent_hash", key=lambda m: m.key.upper())
        )
        picks = {await ref.ask(Job(key="same", seq=n)) for n in range(5)}
        assert len(picks) == 1


@pytest.mark.parametrize("max_attempts", [1, 2])
async def test_consistent_hash_keeps_a_keys_worker_and_order_across_a_worker_restart(
    max_attempts: int,
) -> None:
    log, handled = Log(), Handled()
    keys = [f"conversation-{i}" for i in range(8)]
    retry = gr.RetryPolicy(max_attempts=max_attempts, backoff=NO_BACKOFF)
    async with gr.Runtime() as rt:
        ref = await rt.spawn(
            pool(log, handled, 3, routing="consistent_hash", key="key", retry=retry)
        )
        log.clear()
        for seq in range(5):
            for key in keys:
                await ref.tell(Job(key=key, seq=seq, crash=(key == keys[0] and seq == 2)))
        expected = len(keys) * 5 - (1 if max_attempts == 1 else 0)
        await wait_until(lambda: len(handled) == expected)
        owners, orders = key_orders(handled)
        assert all(len(owners[k]) == 1 for k in keys)
        [crashed] = owners[keys[0]]
        # the one worker that failed was restarted once; no other worker was touched
        assert log.of("crash", *LIFECYCLE) == [
            ("crash", crashed),
            ("stop", crashed),
            ("restart", crashed),
        ]
        if max_attempts == 1:
            assert orders[keys[0]] == [0, 1, 3, 4]
            [letter] = rt.dead_letters.list(reason="handler_failed")
            assert letter.envelope.body == Job(key=keys[0], seq=2, crash=True)
        else:
            assert orders[keys[0]] == [0, 1, 2, 3, 4]
        assert all(orders[k] == list(range(5)) for k in keys[1:])


async def test_resize_grows_and_shrinks_the_pool_stopping_the_newest_in_reverse() -> None:
    log, handled = Log(), Handled()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 2))
        log.clear()
        await ref.resize(4)
        assert log == [("start", "pool/2"), ("start", "pool/3")]
        assert await statuses(ref) == dict.fromkeys("0123", "running")
        picks = [await ref.ask(Job(key="k", seq=n)) for n in range(8)]
        assert collections.Counter(picks) == dict.fromkeys(workers(4), 2)
        log.clear()
        await ref.resize(1)
        assert log == [("stop", "pool/3"), ("stop", "pool/2"), ("stop", "pool/1")]
        assert await statuses(ref) == {"0": "running"}
        assert {await ref.ask(Job(key="k", seq=n)) for n in range(3)} == {"pool/0"}
        with pytest.raises(gr.InvalidSpec):
            await ref.resize(-1)


async def test_resize_from_zero_starts_workers_for_an_empty_pool() -> None:
    log, handled = Log(), Handled()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 0))
        with pytest.raises(gr.ActorStopped):
            await ref.ask(Job(key="k"))
        await ref.resize(2)
        assert {await ref.ask(Job(key="k", seq=n)) for n in range(4)} == set(workers(2))


async def test_growing_a_consistent_hash_pool_moves_keys_only_to_the_new_worker() -> None:
    log, handled = Log(), Handled()
    keys = [f"k{i}" for i in range(200)]
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 4, routing="consistent_hash", key="key"))
        before = {k: await ref.ask(Job(key=k)) for k in keys}
        await ref.resize(5)
        after = {k: await ref.ask(Job(key=k)) for k in keys}
        moved = {k for k in keys if before[k] != after[k]}
        assert moved, "the new worker takes some keys"
        assert {after[k] for k in moved} == {"pool/4"}
        assert len(moved) < len(keys) / 2


async def test_worker_failure_restarts_only_that_worker() -> None:
    log, handled = Log(), Handled()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 3))
        log.clear()
        worker = rt.ref("pool/1")
        with pytest.raises(gr.HandlerError):
            await worker.ask(Job(key="k", crash=True))
        await wait_until(lambda: ("restart", "pool/1") in log)
        assert log.of(*LIFECYCLE) == [("stop", "pool/1"), ("restart", "pool/1")]
        assert await statuses(ref) == dict.fromkeys("012", "running")


async def test_pool_past_its_intensity_escalates_and_is_restarted_with_fresh_workers() -> None:
    log, handled = Log(), Handled()
    async with gr.Runtime() as rt:
        ref = await rt.spawn(pool(log, handled, 3, max_restarts=0))
        log.clear()
        with pytest.raises(gr.HandlerError):
            await rt.ref("pool/1").ask(Job(key="k", crash=True))
        await wait_until(lambda: len(log.of("start")) == 3)
        assert log.of(*LIFECYCLE) == [
            # every worker stops, in reverse start order, the failed one included
            *[("stop", w) for w in reversed(workers(3))],
            # the root restarts the pool, which starts fresh workers in order
            *[("start", w) for w in workers(3)],
        ]
        assert {await ref.ask(Job(key="k", seq=n)) for n in range(3)} == set(workers(3))
