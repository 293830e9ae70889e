"""A customer-support desk: an agent built as a system of actors, running fully offline.

Run it with ``uv run examples/support_desk.py`` (a few seconds, no network,
no API key). The decisions come from a small rules decider standing in for
a language model; everything around it is the real thing:

* a Coordinator (a supervisor) and its router forward each request to the
  worker of its conversation, started on its first message (and stopped
  when idle), so one conversation keeps one worker and its order;
* each worker builds its context from the store under a read contract
  (the customer's profile), remembering the versions it read;
* an order lookup runs through the allowlisted HTTP tool ``fetch`` against a
  tiny order service this script starts on 127.0.0.1;
* a refund is a side effect behind an approval gate: the call is parked, the
  worker goes on, and the refund runs only when a person approves it;
* the customer changes her language while a decision is being made: the
  decision is caught as stale before it acts, and is made again;
* a carrier API drops the connection once: the tool call fails, the
  supervisor restarts the worker and retries the message;
* every step is a span: one request's trace is printed as a tree, and its
  HTML timeline is written to a file.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec

import greenroom as gr
from greenroom.agent import (
    Answer,
    BuiltContext,
    ContextBuilder,
    Conversation,
    Coordinator,
    Fact,
    Request,
    Resolve,
    Worker,
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
    last_tool_result,
    tool_returned,
    user_says,
)
from greenroom.store import ReadEntry, ReadSet
from greenroom.tools import (
    IRREVERSIBLE,
    PURE,
    ApprovalGate,
    Approve,
    Fetch,
    FetchOutput,
    HttpClient,
    Ledger,
    ToolAccess,
    ToolBox,
    ToolCall,
    ToolRegistry,
    tool,
)
from greenroom.trace import Tracer, render_html, render_tree

# -- the store: who may write and read what ------------------------------------


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    language: str = "en"


PROFILES = gr.Scope("desk.profiles", Profile, owner="Profiles", readers=["DeskWorker"])
CONVERSATIONS = conversation_scope("desk.conversations", owner="DeskWorker")


class SetLanguage(gr.Message, frozen=True):
    user: str
    name: str
    language: str


class Profiles(gr.Actor):
    """Owns the customer profiles: the only actor that may write them."""

    writes = (PROFILES,)

    @gr.handler
    async def set_language(self, msg: SetLanguage) -> None:
        view = self.ctx.service(gr.ActorStoreView)
        await view.write(PROFILES, msg.user, Profile(name=msg.name, language=msg.language))


# -- tools ---------------------------------------------------------------------------


class RefundInput(msgspec.Struct, frozen=True, kw_only=True):
    order: int


class RefundOutput(msgspec.Struct, frozen=True, kw_only=True):
    order: int
    refunded: str


class EtaInput(msgspec.Struct, frozen=True, kw_only=True):
    order: int


class EtaOutput(msgspec.Struct, frozen=True, kw_only=True):
    order: int
    arrives: str


REFUNDS: list[int] = []  # what the payment side really did
ETA_CALLS: list[int] = []


@tool(effect=IRREVERSIBLE, requires_approval=True)
async def refund_order(input: RefundInput) -> RefundOutput:
    """Refund an order in full. Moves money: a person approves every call."""
    REFUNDS.append(input.order)
    return RefundOutput(order=input.order, refunded="49.90 EUR")


@tool(effect=PURE)
async def carrier_eta(input: EtaInput) -> EtaOutput:
    """Ask the carrier when an order arrives."""
    ETA_CALLS.append(input.order)
    if len(ETA_CALLS) == 1:
        raise ConnectionError("the carrier API reset the connection")
    return EtaOutput(order=input.order, arrives="Friday")


# -- the decider: rules standing in for a model ---------------------------------------

SAY = {
    "en": {
        "status": "Order {order} is {status}.",
        "eta": "Order {order} arrives on {arrives}.",
        "refund": "Done: order {order} is refunded ({refunded}).",
        "ship": "Yes, we ship to the Canary Islands.",
    },
    "es": {
        "status": "El pedido {order} está {status}.",
        "eta": "El pedido {order} llega el {arrives}.",
        "refund": "Hecho: el pedido {order} está reembolsado ({refunded}).",
        "ship": "Sí, enviamos a las Islas Canarias.",
    },
}


def say(context: Context, what: str) -> Reply:
    """A reply in the customer's language, filled from the last tool result."""
    profile = context.facts.get("profile")
    language = profile.language if isinstance(profile, Profile) else "en"
    result = last_tool_result(context)
    fields = json.loads(result) if result and result.startswith("{") else {}
    if "text" in fields:  # a fetch: the order service's JSON is in the text
        fields = json.loads(fields["text"])
    return Reply(text=SAY[language][what].format(**fields))


def order_number(context: Context) -> int:
    last = context.messages[-1].content or ""
    found = re.search(r"\d+", last)
    return int(found.group()) if found else 0


def make_decider(orders_url: str) -> RulesDecider:
    def lookup(context: Context) -> CallTool:
        return CallTool(name="fetch", arguments={"url": f"{orders_url}/{order_number(context)}"})

    def eta(context: Context) -> CallTool:
        return CallTool(name="carrier_eta", arguments={"order": order_number(context)})

    def refund(context: Context) -> CallTool:
        return CallTool(name="refund_order", arguments={"order": order_number(context)})

    return RulesDecider(
        [
            Rule(tool_returned("fetch"), lambda c: say(c, "status")),
            Rule(tool_returned("carrier_eta"), lambda c: say(c, "eta")),
            Rule(tool_returned("refund_order"), lambda c: say(c, "refund")),
            Rule(user_says("where is"), lookup),
            Rule(user_says("when"), eta),
            Rule(user_says("refund"), refund),
            Rule(user_says("ship to"), lambda c: say(c, "ship")),
        ],
        default=Reply(text="How can I help?"),
        name="support-rules",
    )


class Model:
    """The decider, with a way to make something happen while it is deciding."""

    def __init__(self, inner: Decider) -> None:
        self.inner = inner
        self.meanwhile: Callable[[], Awaitable[None]] | None = None

    @property
    def name(self) -> str:
        return self.inner.name

    async def decide(self, context: Context) -> DecisionResult:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            await meanwhile()  # the world changes while the model thinks
        return await self.inner.decide(context)


# -- the worker: the library's Worker, with its steps narrated --------------------------


def show(value: object) -> str:
    return json.dumps(msgspec.to_builtins(value), ensure_ascii=False)


class DeskWorker(Worker):
    reads = (PROFILES,)
    writes = (CONVERSATIONS,)

    async def on_restart(self, error: gr.ErrorInfo) -> None:
        print(f"   supervisor: {self.ctx.name} failed: {error.message}")
        print("               so it restarted the worker and retries the message")
        await super().on_restart(error)

    async def build_context(
        self, conversation: Conversation, toolbox: ToolBox | None
    ) -> BuiltContext:
        built = await super().build_context(conversation, toolbox)
        envelope = self.ctx.envelope
        attempt = f" (attempt {envelope.attempt})" if envelope and envelope.attempt > 1 else ""
        reads = ", ".join(f"{e.scope}/{e.key}@v{e.version}" for e in built.read_set)
        step = "built a context" if conversation.messages[-1].role == "user" else "rebuilt it"
        print(f"   {self.ctx.name}{attempt} {step} from the store: facts")
        print(f"     {show(built.context.facts)}, read set [{reads}]")
        return built

    async def check_fresh(self, read_set: ReadSet) -> tuple[ReadEntry, ...]:
        stale = await super().check_fresh(read_set)
        for entry in stale:
            print(f"   STALE: {entry.scope}/{entry.key}@v{entry.version} changed while deciding;")
            print("          the decision is dropped before it acts: rebuild, decide again")
        return stale


def print_call(call: ToolCall) -> None:
    if call.error is not None and call.error.type.endswith("ApprovalPending"):
        outcome = f"PARKED for approval (ticket {call.ticket})"
    elif call.error is not None:
        outcome = f"FAILED {call.error.type.removeprefix('greenroom.')}"
    elif isinstance(call.output, FetchOutput):
        outcome = f"HTTP {call.output.status} {call.output.text}"
    else:
        outcome = show(call.output)
    print(f"   tool {call.tool}({show(call.input)}) -> {outcome}")


# -- a tiny order service on 127.0.0.1 ------------------------------------------------

ORDERS = {1042: {"order": 1042, "status": "shipped"}, 2001: {"order": 2001, "status": "packed"}}


async def handle_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request_line = (await reader.readline()).decode()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    path = request_line.split()[1] if len(request_line.split()) > 1 else "/"
    order = ORDERS.get(int(path.rsplit("/", 1)[-1])) if path[-1:].isdigit() else None
    status, body = ("200 OK", json.dumps(order)) if order else ("404 Not Found", "{}")
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
    writer.write(f"{head}content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode())
    await writer.drain()
    writer.close()


# -- the desk -----------------------------------------------------------------------


async def ask(desk: gr.ActorRef, tracer: Tracer, user: str, conv: str, text: str) -> Answer:
    print(f'\n{user} ({conv}): "{text}"')
    with tracer.span("internal", f"{user}: {text}") as root:
        answer = await desk.ask(Request(conversation=conv, text=text, user=user), timeout=5.0)
    assert isinstance(answer, Answer)
    TRACES[text] = root.trace_id
    print(f"   -> {answer.status}: {answer.text}")
    print(f"   (answered by {answer.worker}: every message of {conv!r} is routed there, in order)")
    return answer


TRACES: dict[str, int] = {}
CANARY = "Do you ship to the Canary Islands?"


async def main() -> None:
    print("greenroom support desk: an agent built as a system of actors (offline, rules decider)")
    server = await asyncio.start_server(handle_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = gr.MemoryStore()
    tracer = Tracer()
    model = Model(make_decider(f"http://127.0.0.1:{port}/orders"))
    async with server, HttpClient(allow_hosts=[f"127.0.0.1:{port}"]) as http:
        access = ToolAccess(
            ToolRegistry([Fetch(http), refund_order, carrier_eta]),
            grants={"DeskWorker": ["fetch", "refund_order", "carrier_eta"]},
            approvals=ApprovalGate(store, timeout=60.0),
            interceptors=[Ledger(store)],
            on_call=print_call,
        )
        worker = gr.ChildSpec(
            actor=DeskWorker,
            args=(model, ContextBuilder([Fact("profile", PROFILES, key=lambda c: c.user)])),
            kwargs={"conversations": CONVERSATIONS, "budget": Budget(max_steps=8, deadline=10)},
            retry=gr.RetryPolicy(max_attempts=3, backoff=gr.Backoff(initial=0.01, jitter=0)),
        )
        coordinator = Coordinator(
            "desk",
            routes={Request: "support", Resolve: "support"},
            pools=[conversation_workers("support", worker)],
            children=(gr.ChildSpec(actor=Profiles, id="profiles"),),
        )
        extensions: list[gr.Extension] = [gr.StoreAccess(store), access]
        async with gr.Runtime(extensions=extensions, tracer=tracer) as rt:
            desk = await coordinator.start(rt)
            profiles = rt.ref("desk/profiles")
            await profiles.ask(SetLanguage(user="ada", name="Ada", language="en"))
            await profiles.ask(SetLanguage(user="grace", name="Grace", language="en"))

            print(
                "\n== 1. A request routed by conversation, a context from the store, an HTTP tool"
            )
            await ask(desk, tracer, "ada", "ada-1", "Where is order 1042?")

            print("\n== 2. A tool that crashes once: the supervisor retries the message")
            await ask(desk, tracer, "grace", "grace-1", "When does order 2001 arrive?")

            print("\n== 3. A side effect behind an approval gate")
            parked = await ask(desk, tracer, "ada", "ada-1", "Please refund order 1042.")
            assert parked.ticket is not None
            print(f"   the refund has run {len(REFUNDS)} times; the worker is free meanwhile:")
            await ask(desk, tracer, "grace", "grace-1", "Where is order 2001?")
            print(f"\nthe support lead approves ticket {parked.ticket}")
            verdict = Approve(ticket=parked.ticket, by="support lead")
            done = await desk.ask(Resolve(conversation="ada-1", verdict=verdict))
            assert isinstance(done, Answer)
            print(f"   -> {done.status}: {done.text}   (the refund has run {len(REFUNDS)} time)")
            approved = len(REFUNDS) == 1

            print("\n== 4. The customer changes her language while a decision is in flight")

            async def switch_to_spanish() -> None:
                print("   (meanwhile ada switches her language to Spanish in another tab)")
                await profiles.ask(SetLanguage(user="ada", name="Ada", language="es"))

            model.meanwhile = switch_to_spanish
            redone = await ask(desk, tracer, "ada", "ada-1", CANARY)

        spans = [s for s in tracer.drain() if s.trace_id == TRACES[CANARY]]
        print("\n== 5. The trace of that last request")
        print(render_tree(spans), end="")
        html = Path(tempfile.gettempdir()) / "greenroom-support-desk.html"
        html.write_text(render_html(spans, title="support desk: a stale decision, redone"))
        print(f"HTML timeline: {html}")

    print("\n== Summary")
    print(f"stale decisions caught and redone: {redone.redos}")
    print(
        f"refund held at the approval gate until approved: {parked.status == 'awaiting_approval'}"
    )
    print(f"refund ran exactly once, after approval: {approved}")
    print(f"crashed tool call retried by the supervisor: {len(ETA_CALLS) == 2}")


if __name__ == "__main__":
    asyncio.run(main())
