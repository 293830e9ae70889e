"""The support desk of ``support_desk.py`` with a real language model deciding.

Run it against any OpenAI-compatible server::

    export OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1   # Ollama
    export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-...   # or OpenAI
    uv run examples/support_desk_llm.py

Only the decider changes: the same workers, store contracts, tools, approval
gate, freshness check and supervisor run around it. A model may choose
differently from the rules; the script prints what happened either way.
Without ``OPENAI_BASE_URL`` it says how to run it and exits.
"""

from __future__ import annotations

import asyncio
import os
import sys

import msgspec
from support_desk import (
    CONVERSATIONS,
    ETA_CALLS,
    PROFILES,
    REFUNDS,
    DeskWorker,
    Model,
    Profiles,
    SetLanguage,
    carrier_eta,
    handle_http,
    print_call,
    refund_order,
)

import greenroom as gr
from greenroom.agent import (
    Answer,
    ContextBuilder,
    Coordinator,
    Fact,
    Request,
    Resolve,
    conversation_workers,
)
from greenroom.decide import Budget, ModelConfig, OpenAIClient
from greenroom.tools import (
    PURE,
    ApprovalGate,
    Approve,
    HttpClient,
    Ledger,
    Tool,
    ToolAccess,
    ToolRegistry,
)

SYSTEM = (
    "You are the support agent of an online shop. Use the tools to look orders up, "
    "ask the carrier, or refund; never invent an order's status. Answer in one short "
    "sentence, in the language of the customer's profile (facts.profile.language)."
)


class OrderInput(msgspec.Struct, frozen=True, kw_only=True):
    order: int


class OrderOutput(msgspec.Struct, frozen=True, kw_only=True):
    order: int
    status: str


class LookupOrder(Tool[OrderInput, OrderOutput]):
    """Look an order's status up in the order service."""

    name = "lookup_order"
    effect = PURE

    def __init__(self, http: HttpClient, base_url: str) -> None:
        self.http = http
        self.base_url = base_url

    async def call(self, input: OrderInput) -> OrderOutput:
        response = await self.http.request("GET", f"{self.base_url}/{input.order}")
        return msgspec.convert(response.json(), OrderOutput)


async def turn(desk: gr.ActorRef, user: str, conversation: str, text: str) -> Answer:
    print(f'\n{user} ({conversation}): "{text}"')
    request = Request(conversation=conversation, text=text, user=user)
    answer = await desk.ask(request, timeout=60)
    assert isinstance(answer, Answer)
    print(f"   -> {answer.status}: {answer.text}   ({answer.worker}, redos {answer.redos})")
    return answer


async def main() -> int:
    base_url = os.environ.get("OPENAI_BASE_URL")
    if not base_url:
        print("set OPENAI_BASE_URL (and OPENAI_MODEL, and OPENAI_API_KEY if the server needs")
        print("one), e.g. OPENAI_BASE_URL=http://localhost:11434/v1 OPENAI_MODEL=llama3.1")
        return 0
    config = ModelConfig(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), base_url=base_url)
    print(f"greenroom support desk, decided by {config.model} at {base_url}")
    server = await asyncio.start_server(handle_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = gr.MemoryStore()
    async with (
        server,
        HttpClient(allow_hosts=[f"127.0.0.1:{port}"]) as http,
        OpenAIClient(config, argument_types={"lookup_order": OrderInput}) as client,
    ):
        model = Model(client)
        lookup = LookupOrder(http, f"http://127.0.0.1:{port}/orders")
        access = ToolAccess(
            ToolRegistry([lookup, refund_order, carrier_eta]),
            grants={"DeskWorker": ["lookup_order", "refund_order", "carrier_eta"]},
            approvals=ApprovalGate(store, timeout=300.0),
            interceptors=[Ledger(store)],
            on_call=print_call,
        )
        builder = ContextBuilder([Fact("profile", PROFILES, key=lambda c: c.user)], system=SYSTEM)
        worker = gr.ChildSpec(
            actor=DeskWorker,
            args=(model, builder),
            kwargs={"conversations": CONVERSATIONS, "budget": Budget(max_steps=8, deadline=120)},
            retry=gr.RetryPolicy(max_attempts=3, backoff=gr.Backoff(initial=0.01, jitter=0)),
        )
        coordinator = Coordinator(
            "desk",
            routes={Request: "support", Resolve: "support"},
            pools=[conversation_workers("support", worker)],
            children=(gr.ChildSpec(actor=Profiles, id="profiles"),),
        )
        extensions: list[gr.Extension] = [gr.StoreAccess(store), access]
        async with gr.Runtime(extensions=extensions) as rt:
            desk = await coordinator.start(rt)
            profiles = rt.ref("desk/profiles")
            await profiles.ask(SetLanguage(user="ada", name="Ada", language="en"))
            await profiles.ask(SetLanguage(user="grace", name="Grace", language="en"))

            await turn(desk, "ada", "ada-1", "Where is order 1042?")
            parked = await turn(desk, "ada", "ada-1", "Please refund order 1042.")
            if parked.ticket is not None:
                print(f"   the refund has run {len(REFUNDS)} times; the support lead approves it")
                verdict = Approve(ticket=parked.ticket, by="support lead")
                done = await desk.ask(Resolve(conversation="ada-1", verdict=verdict), timeout=60)
                assert isinstance(done, Answer)
                print(f"   -> {done.status}: {done.text}   (refunds run: {len(REFUNDS)})")
            await turn(desk, "grace", "grace-1", "When does order 2001 arrive?")

            async def switch_to_spanish() -> None:
                print("   (meanwhile ada switches her language to Spanish)")
                await profiles.ask(SetLanguage(user="ada", name="Ada", language="es"))

            model.meanwhile = switch_to_spanish
            redone = await turn(desk, "ada", "ada-1", "Do you ship to the Canary Islands?")

    print("\n== Summary")
    print(f"stale decisions caught and redone: {redone.redos}")
    print(f"refund ran after approval: {len(REFUNDS)}")
    print(f"carrier calls (one crashed, retried by the supervisor): {len(ETA_CALLS)}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
