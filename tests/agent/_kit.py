"""A small agent for the agent-layer tests: preferences in the store, an order tool, a refund."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import anyio.lowlevel
import msgspec

import greenroom as gr
from greenroom.actors import Spec
from greenroom.agent import (
    ContextBuilder,
    Coordinator,
    Delegator,
    Fact,
    Passivate,
    Request,
    Resolve,
    Worker,
    conversation_pool,
    conversation_scope,
    conversation_workers,
)
from greenroom.decide import (
    Budget,
    CallTool,
    Context,
    Decider,
    DecisionResult,
    Reply,
    Rule,
    RulesDecider,
    always,
    last_tool_result,
    tool_returned,
    user_says,
)
from greenroom.tools import (
    IRREVERSIBLE,
    PURE,
    ApprovalGate,
    ToolAccess,
    ToolCall,
    ToolRegistry,
    tool,
)
from greenroom.trace import Tracer

NO_BACKOFF = gr.Backoff(initial=0.0, maximum=0.0, jitter=0.0)


class Prefs(msgspec.Struct, frozen=True, kw_only=True):
    language: str = "en"


# The test_context Builder reads it: the application spawns it as "builder".
PREFS = gr.Scope("test.prefs", Prefs, owner="PrefsOwner", readers=["TestWorker", "builder"])
CONVERSATIONS = conversation_scope("test.conversations", owner="TestWorker")


class OrderInput(msgspec.Struct, frozen=True, kw_only=True):
    order: int


class OrderOutput(msgspec.Struct, frozen=True, kw_only=True):
    order: int
    status: str


class RefundInput(msgspec.Struct, frozen=True, kw_only=True):
    order: int


class RefundOutput(msgspec.Struct, frozen=True, kw_only=True):
    refunded: int


@dataclass
class Calls:
    """What the tools saw, and how many of the next lookups fail."""

    lookups: list[int] = field(default_factory=list)
    refunds: list[int] = field(default_factory=list)
    fail_next: int = 0


CALLS = Calls()


@tool(effect=PURE)
async def lookup_order(input: OrderInput) -> OrderOutput:
    """Look an order up."""
    CALLS.lookups.append(input.order)
    if CALLS.fail_next:
        CALLS.fail_next -= 1
        raise ConnectionError("order service dropped the connection")
    return OrderOutput(order=input.order, status="shipped")


@tool(effect=IRREVERSIBLE, requires_approval=True, name="refund_order")
async def refund(input: RefundInput) -> RefundOutput:
    """Refund an order (a person approves it first)."""
    CALLS.refunds.append(input.order)
    return RefundOutput(refunded=input.order)


def language(context: Context) -> str:
    prefs = context.facts.get("prefs")
    return prefs.language if isinstance(prefs, Prefs) else "en"


def reply(context: Context, lead: str) -> Reply:
    return Reply(text=f"{lead}: {last_tool_result(context)}")


RULES = RulesDecider(
    [
        Rule(tool_returned("refund_order"), lambda c: reply(c, "refunded")),
        Rule(tool_returned("lookup_order"), lambda c: reply(c, language(c))),
        Rule(user_says("refund"), CallTool(name="refund_order", arguments={"order": 7})),
        Rule(user_says("order"), CallTool(name="lookup_order", arguments={"order": 7})),
        Rule(always, lambda c: Reply(text=f"{language(c)}: hello, message {len(c.messages)}")),
    ],
    name="test-rules",
)

Hook = Callable[[Context], Awaitable[None]]


class Hooked:
    """A decider that runs ``hook`` before its inner decider decides (a change mid-decision)."""

    def __init__(self, inner: Decider, hook: Hook) -> None:
        self.inner = inner
        self.hook = hook
        self.contexts: list[Context] = []

    @property
    def name(self) -> str:
        return self.inner.name

    async def decide(self, context: Context) -> DecisionResult:
        self.contexts.append(context)
        await self.hook(context)
        return await self.inner.decide(context)


@dataclass
class Hooks:
    """What the test workers did, and gates a test can hold them at."""

    starts: list[str] = field(default_factory=list)  # instances started (restarts too)
    stops: list[str] = field(default_factory=list)
    stopped: anyio.Event | None = None  # set by a worker's on_stop
    passivating: anyio.Event | None = None  # set when a worker gets Passivate
    hold: anyio.Event | None = None  # a worker handles Passivate once this is set

    def reset(self) -> None:
        self.starts.clear()
        self.stops.clear()
        self.stopped = self.passivating = self.hold = None


HOOKS = Hooks()


class TestWorker(Worker):
    __test__ = False  # not a pytest class
    reads = (PREFS,)
    writes = (CONVERSATIONS,)

    async def on_start(self) -> None:
        HOOKS.starts.append(self.ctx.name)
        await super().on_start()

    async def on_stop(self) -> None:
        HOOKS.stops.append(self.ctx.name)
        if HOOKS.stopped is not None:
            HOOKS.stopped.set()

    @gr.handler
    async def passivate(self, msg: Passivate) -> None:
        if HOOKS.passivating is not None:
            HOOKS.passivating.set()
        if HOOKS.hold is not None:
            await HOOKS.hold.wait()
        await super().passivate(msg)

    async def on_passivated(self, conversation: str) -> None:
        PASSIVATED.append(conversation)
        if PASSIVATED_EVENT is not None:
            PASSIVATED_EVENT.set()


PASSIVATED: list[str] = []
PASSIVATED_EVENT: anyio.Event | None = None


BUILDER = ContextBuilder([Fact("prefs", PREFS, key=lambda c: c.user)], system="be brief")


def worker_spec(
    decider: Decider = RULES,
    *,
    budget: Budget | None = None,
    attempts: int = 3,
    passivate_after: float | None = None,
    actor: type[Worker] = TestWorker,
    delegator: Delegator | None = None,
) -> gr.ChildSpec:
    return gr.ChildSpec(
        actor=actor,
        args=(decider, BUILDER),
        kwargs={
            "conversations": CONVERSATIONS,
            "budget": budget,
            "passivate_after": passivate_after,
            "delegator": delegator,
        },
        retry=gr.RetryPolicy(max_attempts=attempts, backoff=NO_BACKOFF),
    )


def access(store: gr.Store, records: list[ToolCall], approval_timeout: float = 60.0) -> ToolAccess:
    registry = ToolRegistry([lookup_order, refund])
    return ToolAccess(
        registry,
        grants={"TestWorker": ["lookup_order", "refund_order"]},
        approvals=ApprovalGate(store, timeout=approval_timeout),
        on_call=records.append,
    )


@dataclass
class Desk:
    runtime: gr.Runtime
    ref: gr.ActorRef
    store: gr.MemoryStore
    records: list[ToolCall]

    async def ask(self, conversation: str, text: str, user: str = "ada") -> object:
        return await self.ref.ask(Request(conversation=conversation, text=text, user=user))

    async def resolve(self, conversation: str, verdict: object) -> object:
        return await self.ref.ask(Resolve(conversation=conversation, verdict=verdict))  # type: ignore[arg-type]


@asynccontextmanager
async def desk(
    worker: gr.ChildSpec | None = None,
    *,
    size: int = 1,
    keyed: bool = False,
    idle: float | None = None,
    tracer: Tracer | None = None,
    approval_timeout: float = 60.0,
    children: Sequence[Spec] = (),
) -> AsyncIterator[Desk]:
    """A desk of one pool of ``size`` workers, or (``keyed``) one worker per conversation,
    passivated after ``idle`` seconds."""
    CALLS.lookups.clear()
    CALLS.refunds.clear()
    CALLS.fail_next = 0
    HOOKS.reset()
    store = gr.MemoryStore()
    records: list[ToolCall] = []
    spec = worker or worker_spec()
    pool = (
        conversation_workers("workers", spec, passivate_after=idle)
        if keyed
        else conversation_pool("workers", spec, size=size)
    )
    coordinator = Coordinator(
        "desk", routes={Request: "workers", Resolve: "workers"}, pools=[pool], children=children
    )
    tools = access(store, records, approval_timeout)
    extensions: Sequence[gr.Extension] = (gr.StoreAccess(store), tools)
    async with gr.Runtime(extensions=extensions, tracer=tracer) as rt:
        yield Desk(rt, await coordinator.start(rt), store, records)


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Yield to the event loop until ``predicate()`` holds; fail after ``timeout`` s (no sleep)."""
    with anyio.fail_after(timeout):
        while not await predicate():
            await anyio.lowlevel.checkpoint()
