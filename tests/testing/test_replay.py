"""Replay: a recorded run re-run with its decisions and tool outputs served back."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest

import greenroom as gr
from greenroom.decide import (
    CallTool,
    ChatMessage,
    Context,
    Decider,
    Failure,
    Reply,
    Rule,
    RulesDecider,
    last_tool_result,
    tool_returned,
    user_says,
)
from greenroom.testing import (
    Replay,
    ReplayDiverged,
    decision_steps,
    tool_calls,
)
from greenroom.tools import (
    PURE,
    Grant,
    Interceptor,
    Invocation,
    ToolAccess,
    ToolBox,
    ToolFailed,
    ToolRegistry,
    tool,
)
from greenroom.trace import Span, SqliteTraceStore, Tracer, genai

pytestmark = pytest.mark.anyio

ONE_ATTEMPT = gr.RetryPolicy(max_attempts=1, backoff=gr.Backoff(initial=0.0, maximum=0.0))


class AddIn(msgspec.Struct, frozen=True):
    a: int
    b: int


class Number(msgspec.Struct, frozen=True):
    n: int


class Ask(gr.Message):
    text: str


RULES = RulesDecider(
    [
        Rule(user_says("add"), CallTool(name="add", arguments={"a": 2, "b": 3})),
        Rule(
            tool_returned("add"),
            lambda ctx: CallTool(
                name="double", arguments=msgspec.json.decode(last_tool_result(ctx) or "{}")
            ),
        ),
        Rule(tool_returned("double"), lambda ctx: Reply(text=f"result {last_tool_result(ctx)}")),
    ],
    name="arith",
)


@dataclass
class Code:
    """The knobs of the code under replay: change one and the run diverges."""

    render: Callable[[msgspec.Struct], str] = lambda out: msgspec.json.encode(out).decode()
    offset: int = 0  # added to every tool argument "a"
    max_steps: int = 5
    runs: list[str] = field(default_factory=list)  # what the tools really ran


class Agent(gr.Actor):
    """Decides, calls the decided tools through its ToolBox, feeds the results back."""

    def __init__(self, decider: Decider, code: Code) -> None:
        self.decider = decider
        self.code = code

    @gr.handler
    async def ask(self, msg: Ask) -> str:
        box = self.ctx.service(ToolBox)
        context = Context(messages=(ChatMessage.user(msg.text),), tools=tuple(box.definitions()))
        for _ in range(self.code.max_steps):
            result = await self.decider.decide(context)
            if isinstance(result.final, Reply):
                return result.final.text
            context = context.add(ChatMessage.assistant(calls=result.tool_calls))
            for call in result.tool_calls:
                arguments = dict(call.arguments)
                if "a" in arguments:
                    arguments["a"] = int(arguments["a"]) + self.code.offset  # type: ignore[call-overload]
                out = await box.call(call.name, arguments)
                context = context.add(ChatMessage.tool_result(call, self.code.render(out)))
        return "gave up"


def registry(code: Code) -> ToolRegistry:
    @tool(effect=PURE)
    async def add(input: AddIn) -> Number:
        """Add two numbers."""
        code.runs.append("add")
        return Number(n=input.a + input.b)

    @tool(effect=PURE)
    async def double(input: Number) -> Number:
        """Double a number."""
        code.runs.append("double")
        return Number(n=2 * input.n)

    return ToolRegistry([add, double])


async def run(
    code: Code,
    decider: Decider,
    interceptors: list[Interceptor],
    tracer: Tracer | None = None,
    asks: int = 1,
) -> list[str]:
    access = ToolAccess(
        registry(code), grants={"agent": ["add", Grant("double")]}, interceptors=interceptors
    )
    answers = []
    async with gr.Runtime(tracer=tracer, extensions=[access]) as rt:
        agent = await rt.spawn(Agent, name="agent", args=(decider, code), retry=ONE_ATTEMPT)
        for _ in range(asks):
            answers.append(await agent.ask(Ask(text="add 2 and 3"), timeout=10))
    return answers


@pytest.fixture
async def recorded(tmp_path: Path) -> tuple[Path, int, list[str]]:
    """A real run recorded in a trace store: 3 decision steps, 2 tool calls."""
    db = tmp_path / "traces.db"
    code = Code()
    async with SqliteTraceStore(db) as store:
        answers = await run(code, RULES, [], store.tracer)
        await store.flush()
        [summary] = await store.recent_traces(5)
    assert answers == ['result {"n":10}']
    assert code.runs == ["add", "double"]
    return db, summary.trace_id, answers


async def load(db: Path, trace_id: int, **options: object) -> Replay:
    async with SqliteTraceStore(db) as store:
        return await Replay.load(store, f"{trace_id:016x}"[:10], **options)  # type: ignore[arg-type]


async def test_replay_reproduces_the_recorded_decisions_and_tool_calls_without_running_tools(
    recorded: tuple[Path, int, list[str]],
) -> None:
    db, trace_id, answers = recorded
    async with SqliteTraceStore(db) as store:
        spans = await store.spans(trace_id)
    replay = await load(db, trace_id)
    code, tracer = Code(), Tracer()

    replayed = await run(code, replay.decider, [replay.tools], tracer)

    assert replayed == answers
    assert code.runs == []  # no tool ran again
    report = replay.report()
    assert report.ok
    assert (report.decisions, report.served_decisions) == (3, 3)
    assert (report.tool_calls, report.served_tool_calls) == (2, 2)
    again = tracer.drain()
    strip = {"span_id", "trace_id", "step"}
    for old, new in zip(decision_steps(spans), decision_steps(again), strict=True):
        assert (new.context, new.decisions, new.model) == (old.context, old.decisions, old.model)
    assert [msgspec.structs.asdict(c) | dict.fromkeys(strip) for c in tool_calls(again)] == [
        msgspec.structs.asdict(c) | dict.fromkeys(strip) for c in tool_calls(spans)
    ]
    assert [c.tool for c in tool_calls(spans)] == ["add", "double"]


async def test_a_changed_context_raises_replay_diverged_naming_the_step_and_path(
    recorded: tuple[Path, int, list[str]],
) -> None:
    db, trace_id, _ = recorded
    replay = await load(db, trace_id)
    code = Code(render=lambda out: repr(out))  # the tool result is shown another way

    with pytest.raises(gr.HandlerError, match="ReplayDiverged"):
        await run(code, replay.decider, [replay.tools])

    with pytest.raises(ReplayDiverged) as caught:
        replay.check()
    error = caught.value
    assert (error.kind, error.step, error.actor, error.what) == ("decision", 2, "agent", "context")
    assert error.path == "$.messages[2].content"
    assert error.expected == '"{\\"n\\":5}"'
    assert error.found == '"Number(n=5)"'
    assert "decision step 2 (actor 'agent')" in str(error)
    assert code.runs == []


async def test_collect_mode_serves_the_recording_and_lists_every_divergence(
    recorded: tuple[Path, int, list[str]],
) -> None:
    db, trace_id, answers = recorded
    replay = await load(db, trace_id, mode="collect")

    replayed = await run(Code(render=repr), replay.decider, [replay.tools])

    assert replayed == answers  # the recorded decisions were served despite the differences
    found = [(d.kind, d.step, d.what, d.path) for d in replay.report().divergences]
    assert found == [
        ("decision", 2, "context", "$.messages[2].content"),
        ("decision", 3, "context", "$.messages[2].content"),
    ]


async def test_other_tool_arguments_raise_replay_diverged_naming_the_call(
    recorded: tuple[Path, int, list[str]],
) -> None:
    db, trace_id, _ = recorded
    replay = await load(db, trace_id)
    code = Code(offset=1)

    with pytest.raises(gr.HandlerError):
        await run(code, replay.decider, [replay.tools])

    [divergence] = replay.report().divergences[:1]
    assert (divergence.kind, divergence.step, divergence.what) == ("tool", 1, "arguments")
    assert (divergence.path, divergence.expected, divergence.found) == ("$.a", "2", "3")
    assert code.runs == []


async def test_more_steps_than_recorded_raise_replay_diverged_as_extra(
    recorded: tuple[Path, int, list[str]],
) -> None:
    db, trace_id, _ = recorded
    replay = await load(db, trace_id, mode="collect")  # extra steps raise in every mode

    with pytest.raises(gr.HandlerError, match="more decision calls than the recording"):
        await run(Code(), replay.decider, [replay.tools], asks=2)

    [extra] = replay.report().divergences
    assert (extra.kind, extra.step, extra.actor, extra.what) == ("decision", 4, "agent", "extra")


async def test_steps_and_calls_never_asked_for_are_reported_missing(
    recorded: tuple[Path, int, list[str]],
) -> None:
    db, trace_id, _ = recorded
    replay = await load(db, trace_id)

    assert await run(Code(max_steps=1), replay.decider, [replay.tools]) == ["gave up"]

    missing = [(d.kind, d.step, d.what) for d in replay.report().divergences]
    assert missing == [
        ("decision", 2, "missing"),
        ("decision", 3, "missing"),
        ("tool", 2, "missing"),
    ]
    with pytest.raises(ReplayDiverged, match="never asked for"):
        replay.check()


def span(kind: str, span_id: int, start: float, **attributes: object) -> Span:
    error = attributes.pop("error", None)
    actor = "x" if kind == "tool" else None  # llm spans: decided outside any actor
    return Span(
        trace_id=7,
        span_id=span_id,
        parent_id=1,
        kind=kind,
        name=kind,
        actor=actor,
        start=start,
        end=start,
        status="error" if error else "ok",
        attributes=attributes,
        error=error,  # type: ignore[arg-type]
    )


CONTEXT = msgspec.to_builtins(Context(messages=(ChatMessage.user("hi"),)))


async def test_a_routers_fallbacks_replay_as_one_step_and_a_failed_call_raises_again() -> None:
    failed = gr.ErrorInfo(type="greenroom.ModelUnavailable", message="HTTP 503")
    spans = [
        span("message", 1, 0.0),
        span(
            "llm",
            2,
            1.0,
            error=failed,
            **{genai.REQUEST_MODEL: "big", "greenroom.context": CONTEXT},
        ),
        span(
            "llm",
            3,
            2.0,
            **{
                genai.REQUEST_MODEL: "small",
                genai.RESPONSE_MODEL: "small",
                genai.INPUT_TOKENS: 7,
                genai.OUTPUT_TOKENS: 2,
                "greenroom.context": CONTEXT,
                genai.DECISION: [{"type": "Reply", "text": "hello", "value": None}],
            },
        ),
        span(
            "tool",
            4,
            3.0,
            error=gr.ErrorInfo(
                type="greenroom.ToolFailed", message="tool 'add' failed: KeyError: 'boom'"
            ),
            **{genai.TOOL_NAME: "add", genai.TOOL_CALL_ARGUMENTS: {"a": 1, "b": 2}},
        ),
    ]
    replay = Replay.from_spans(spans)

    result = await replay.decider.decide(Context(messages=(ChatMessage.user("hi"),)))

    assert result.decisions == (Reply(text="hello"),)
    assert result.model == "small"
    assert result.failures == (Failure(model="big", error=failed),)
    assert result.usage is not None
    assert result.usage.total_tokens == 9
    invocation = Invocation(
        call_id=1, tool="add", effect=PURE, actor="x", grant=Grant("add"), delegation=None,
        input=AddIn(a=1, b=2), input_hash="", message_id=None, attempt=1, step=0,
        trace_id=None, output_type=Number,
    )  # fmt: skip
    with pytest.raises(ToolFailed) as failed_call:
        await replay.tools.intercept(invocation, proceed=_never)
    assert (failed_call.value.error_type, failed_call.value.error_message) == (
        "KeyError",
        "'boom' (replayed)",
    )
    assert replay.report().ok


async def _never() -> msgspec.Struct:
    raise AssertionError("the tool must not run under replay")
