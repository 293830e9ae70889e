"""One request across actors, with a tool call, a crash and a retry: the exact span tree,
read back from the sqlite trace store."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import greenroom as gr
from greenroom.tools import PURE, ToolAccess, ToolBox, ToolRegistry, tool
from greenroom.trace import Span, SqliteTraceStore, genai, render_tree

NO_BACKOFF = gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class LookupIn(msgspec.Struct, frozen=True):
    order: int


class LookupOut(msgspec.Struct, frozen=True):
    status: str


@tool(effect=PURE)
async def lookup(input: LookupIn) -> LookupOut:
    """Look an order up."""
    return LookupOut(status=f"order {input.order} shipped")


class Request(gr.Message):
    order: int


class Lookup(gr.Message):
    order: int


class Front(gr.Actor):
    @gr.handler
    async def request(self, msg: Request) -> str:
        answer: str = await self.ctx.runtime.ref("desk/clerk").ask(Lookup(order=msg.order))
        return answer


class Clerk(gr.Actor):
    crashed = False

    @gr.handler
    async def lookup(self, msg: Lookup) -> str:
        out = await self.ctx.service(ToolBox).call("lookup", {"order": msg.order})
        if not Clerk.crashed:
            Clerk.crashed = True
            raise ConnectionError("the clerk's terminal froze")
        assert isinstance(out, LookupOut)
        return out.status


def shape(spans: list[Span]) -> list[tuple[int, str, str, str | None, str]]:
    """(depth, kind, name, actor, status) in tree order: children after their parent, by start."""
    children: dict[int | None, list[Span]] = {}
    for span in spans:
        children.setdefault(span.parent_id, []).append(span)
    out: list[tuple[int, str, str, str | None, str]] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start, s.kind)):
            out.append((depth, span.kind, span.name, span.actor, span.status))
            walk(span.span_id, depth + 1)

    walk(None, 0)
    return out


@pytest.mark.anyio
async def test_a_request_with_a_tool_call_a_crash_and_a_retry_has_this_exact_span_tree(
    tmp_path: Path,
) -> None:
    Clerk.crashed = False
    access = ToolAccess(ToolRegistry([lookup]), grants={"Clerk": ["lookup"]})
    async with SqliteTraceStore(tmp_path / "traces.db") as store:
        async with gr.Runtime(tracer=store.tracer, extensions=[access]) as rt:
            await rt.spawn(Front, name="front")
            await rt.spawn(
                gr.SupervisorSpec(
                    id="desk",
                    backoff=NO_BACKOFF,
                    children=(
                        gr.ChildSpec(
                            actor=Clerk,
                            id="clerk",
                            retry=gr.RetryPolicy(max_attempts=2, backoff=NO_BACKOFF),
                        ),
                    ),
                )
            )
            assert await rt.ref("front").ask(Request(order=7)) == "order 7 shipped"
        await store.flush()
        [summary] = [t for t in await store.recent_traces() if t.name == "Request"]
        spans = await store.spans(summary.trace_id)
    assert shape(spans) == [
        (0, "message", "Request", "front", "ok"),
        (1, "message", "Lookup", "desk/clerk", "error"),
        (2, "tool", "lookup", "desk/clerk", "ok"),
        (2, "supervisor", "retry", "desk", "ok"),
        (2, "supervisor", "restart", "desk", "ok"),
        (1, "message", "Lookup", "desk/clerk", "ok"),
        (2, "tool", "lookup", "desk/clerk", "ok"),
    ], render_tree(spans)
    tools = [s for s in spans if s.kind == "tool"]
    assert tools[0].attributes[genai.TOOL_CALL_ARGUMENTS] == {"order": 7}
    assert tools[1].attributes[genai.TOOL_CALL_RESULT] == {"status": "order 7 shipped"}
    assert tools[0].attributes["greenroom.grant"]["tool"] == "lookup"  # type: ignore[index]
    failed = next(s for s in spans if s.status == "error")
    assert failed.error is not None
    assert failed.error.type == "ConnectionError"
    assert summary.errors == 1
    assert summary.status == "ok"


class Sneaky(gr.Actor):
    @gr.handler
    async def lookup(self, msg: Lookup) -> str:
        try:
            await self.ctx.service(ToolBox).call("lookup", {"order": msg.order})
        except gr.GreenroomError as exc:
            return type(exc).__name__
        return "ran"


@pytest.mark.anyio
async def test_a_refused_tool_call_is_a_failed_tool_span_and_the_tool_never_ran() -> None:
    from greenroom.trace import Tracer

    tracer = Tracer()
    access = ToolAccess(ToolRegistry([lookup]), grants={"Clerk": ["lookup"]})
    async with gr.Runtime(tracer=tracer, extensions=[access]) as rt:
        sneaky = await rt.spawn(Sneaky, name="sneaky")
        assert await sneaky.ask(Lookup(order=1)) == "ToolNotGranted"
    [span] = [s for s in tracer.drain() if s.kind == "tool"]
    assert span.status == "error"
    assert span.error is not None
    assert span.error.type.endswith("ToolNotGranted")
    assert span.attributes["greenroom.ran"] is False
