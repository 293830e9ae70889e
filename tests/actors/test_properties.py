"""Hypothesis properties of the runtime: order, exactly-once outcome, no leftover tasks."""

from __future__ import annotations

import asyncio

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import greenroom as gr

FAST_RETRY = gr.RetryPolicy(max_attempts=3, backoff=gr.Backoff(initial=0.0, jitter=0.0))


class Job(gr.Message):
    id: int
    sender: int
    fail_attempts: int  # the handler raises on attempts 1..fail_attempts


class Worker(gr.Actor):
    def __init__(self, handled: list[tuple[int, int]]) -> None:
        self.handled = handled

    @gr.handler
    async def job(self, msg: Job) -> int:
        envelope = self.ctx.envelope
        assert envelope is not None
        if envelope.attempt <= msg.fail_attempts:
            raise RuntimeError(f"job {msg.id} fails on attempt {envelope.attempt}")
        if msg.id % 3 == 0:
            await anyio.lowlevel.checkpoint()  # some handlers suspend, some do not
        self.handled.append((msg.sender, msg.id))
        return msg.id


NO_BACKOFF = gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0)


async def _spawn_worker(rt: gr.Runtime, worker: gr.ChildSpec) -> gr.ActorRef:
    """The worker under a supervisor that restarts at once and never gives up."""
    await rt.spawn(
        gr.SupervisorSpec(id="sup", children=(worker,), max_restarts=10_000, backoff=NO_BACKOFF)
    )
    return rt.ref(f"sup/{worker.child_id}")


jobs_strategy = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=3),  # sender
        st.integers(min_value=0, max_value=3),  # failures before success (3 = never succeeds)
        st.booleans(),  # ask instead of tell
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(jobs_strategy)
def test_every_message_is_handled_or_dead_lettered_exactly_once(
    jobs: list[tuple[int, int, bool]],
) -> None:
    """Property (2): under random failures each message has exactly one outcome,
    and every ask returns or raises within its timeout."""

    async def main() -> None:
        handled: list[tuple[int, int]] = []
        ask_outcomes: dict[int, object] = {}
        before = set(asyncio.all_tasks())
        async with gr.Runtime() as rt:
            ref = await _spawn_worker(
                rt, gr.ChildSpec(actor=Worker, args=(handled,), retry=FAST_RETRY)
            )

            async def send(job_id: int, sender: int, fails: int, ask: bool) -> None:
                body = Job(id=job_id, sender=sender, fail_attempts=fails)
                if not ask:
                    await ref.tell(body)
                    return
                with anyio.fail_after(3.0):  # the ask's own timeout is 2 s
                    try:
                        ask_outcomes[job_id] = await ref.ask(body, timeout=2.0)
                    except gr.HandlerError as exc:
                        ask_outcomes[job_id] = exc

            async with anyio.create_task_group() as tg:
                for job_id, (sender, fails, ask) in enumerate(jobs):
                    tg.start_soon(send, job_id, sender, fails, ask)
            # a last message from the same outside sender marks the end
            with anyio.fail_after(5):
                await ref.ask(Job(id=-1, sender=-1, fail_attempts=0), timeout=4.0)
            dead = [dl.envelope.body for dl in rt.dead_letters.list()]
        handled_ids = [job_id for _, job_id in handled if job_id >= 0]
        dead_ids = [body.id for body in dead if isinstance(body, Job)]
        assert len(handled_ids) == len(set(handled_ids)), "a message was handled twice"
        assert len(dead_ids) == len(set(dead_ids)), "a message was dead-lettered twice"
        assert not set(handled_ids) & set(dead_ids)
        assert sorted(handled_ids + dead_ids) == list(range(len(jobs)))
        for job_id, (_, fails, ask) in enumerate(jobs):
            expected_handled = fails < FAST_RETRY.max_attempts
            assert (job_id in handled_ids) == expected_handled, job_id
            if ask:
                outcome = ask_outcomes[job_id]
                if expected_handled:
                    assert outcome == job_id
                else:
                    assert isinstance(outcome, gr.HandlerError)
                    assert outcome.error_type == "RuntimeError"
        # Property (3): nothing the runtime started is still running.
        assert set(asyncio.all_tasks()) - before == set()

    anyio.run(main, backend="asyncio")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60),
    st.lists(st.integers(min_value=0, max_value=2), min_size=60, max_size=60),
    st.integers(min_value=1, max_value=4),
)
def test_per_sender_fifo_holds_across_interleavings_retries_and_backpressure(
    schedule: list[int], fails: list[int], capacity: int
) -> None:
    """Property (1): whatever the interleaving of senders, retries and waiting for
    room, each sender's messages are handled in the order it sent them."""

    async def main() -> None:
        handled: list[tuple[int, int]] = []
        async with gr.Runtime() as rt:
            ref = await _spawn_worker(
                rt,
                gr.ChildSpec(
                    actor=Worker,
                    args=(handled,),
                    retry=FAST_RETRY,
                    mailbox=gr.MailboxConfig(capacity=capacity),
                ),
            )
            per_sender: dict[int, list[int]] = {s: [] for s in range(4)}
            for i, sender in enumerate(schedule):
                per_sender[sender].append(i)

            async def sender_task(sender: int, ids: list[int]) -> None:
                for job_id in ids:
                    await ref.tell(Job(id=job_id, sender=sender, fail_attempts=fails[job_id]))
                    if job_id % 2:
                        await anyio.lowlevel.checkpoint()

            async with anyio.create_task_group() as tg:
                for sender, ids in per_sender.items():
                    tg.start_soon(sender_task, sender, ids)
            with anyio.fail_after(5):
                await ref.ask(Job(id=-1, sender=-1, fail_attempts=0))
        for sender, ids in per_sender.items():
            assert [j for s, j in handled if s == sender] == ids

    anyio.run(main, backend="asyncio")
