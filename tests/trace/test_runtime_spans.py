"""The runtime records spans: message handling, retries, restarts, dead letters, in one trace."""

from __future__ import annotations

import pytest

import greenroom as gr
from greenroom.trace import Span, Tracer

NO_BACKOFF = gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class Order(gr.Message):
    n: int


class Check(gr.Message):
    n: int


class Front(gr.Actor):
    @gr.handler
    async def order(self, msg: Order) -> str:
        result: str = await self.ctx.runtime.ref("backs/back").ask(Check(n=msg.n))
        return result


class Back(gr.Actor):
    def __init__(self, failures: dict[int, int]) -> None:
        self.failures = failures

    @gr.handler
    async def check(self, msg: Check) -> str:
        if self.failures.get(msg.n, 0) > 0:
            self.failures[msg.n] -= 1
            raise ConnectionError(f"backend dropped {msg.n}")
        return f"ok {msg.n}"


def by_id(spans: list[Span]) -> dict[int, Span]:
    return {s.span_id: s for s in spans}


@pytest.mark.anyio
async def test_a_request_with_a_crash_and_a_retry_is_one_trace_with_its_supervisor_actions() -> (
    None
):
    tracer = Tracer()
    async with gr.Runtime(tracer=tracer) as rt:
        await rt.spawn(Front, name="front")
        await rt.spawn(
            gr.SupervisorSpec(
                id="backs",
                backoff=NO_BACKOFF,
                children=(
                    gr.ChildSpec(
                        actor=Back,
                        id="back",
                        args=({1: 1},),
                        retry=gr.RetryPolicy(max_attempts=2, backoff=NO_BACKOFF),
                    ),
                ),
            )
        )
        assert await rt.ref("front").ask(Order(n=1)) == "ok 1"
    spans = tracer.drain()
    trace_ids = {s.trace_id for s in spans if s.kind == "message"}
    assert len(trace_ids) == 1
    spans = [s for s in spans if s.trace_id in trace_ids]
    ids = by_id(spans)
    [front] = [s for s in spans if s.kind == "message" and s.actor == "front"]
    backs = [s for s in spans if s.kind == "message" and s.actor == "backs/back"]
    assert front.parent_id is None
    assert front.name == "Order"
    assert front.status == "ok"
    # the failed attempt and the retried one, both children of the front's span
    assert [(s.status, s.parent_id) for s in backs] == [
        ("error", front.span_id),
        ("ok", front.span_id),
    ]
    assert backs[0].error is not None
    assert backs[0].error.type == "ConnectionError"
    assert backs[0].span_id != backs[1].span_id
    actions = [
        (s.name, s.actor, ids[s.parent_id].actor if s.parent_id else None)
        for s in spans
        if s.kind == "supervisor"
    ]
    assert actions == [
        ("retry", "backs", "backs/back"),
        ("restart", "backs", "backs/back"),
    ]
    retry = next(s for s in spans if s.name == "retry")
    assert retry.attributes["greenroom.attempt"] == 2


@pytest.mark.anyio
async def test_a_dead_letter_is_a_span_of_the_message_it_ends() -> None:
    tracer = Tracer()
    async with gr.Runtime(tracer=tracer) as rt:
        back = await rt.spawn(
            Back, name="back", args=({7: 5},), retry=gr.RetryPolicy(max_attempts=1)
        )
        with pytest.raises(gr.HandlerError):
            await back.ask(Check(n=7))
    spans = tracer.drain()
    [message] = [s for s in spans if s.kind == "message"]
    [letter] = [s for s in spans if s.name == "dead_letter"]
    assert letter.parent_id == message.span_id
    assert letter.trace_id == message.trace_id
    assert letter.attributes["greenroom.reason"] == "handler_failed"


@pytest.mark.anyio
async def test_an_untraced_runtime_records_nothing_and_pays_one_branch() -> None:
    async with gr.Runtime() as rt:
        back = await rt.spawn(Back, name="back", args=({},))
        assert await back.ask(Check(n=1)) == "ok 1"
        assert rt.tracer is None
