"""Per-step runtime overhead of a tool-calling agent: greenroom against LangGraph and autogen-core.

Run::

    uv run benchmarks/agent.py [--quick] [--json] [--repeat N]

The task, the same for every contender: a user message; the model answers
with a tool call, the framework runs a local Python tool and sends the result
back, three times (``lookup_order``, ``carrier_eta``, ``shipping_cost``), then
the model gives a final text reply. The model is greenroom's
``ScriptedModelServer`` (an OpenAI-compatible chat-completions server over
real HTTP/1.1 on 127.0.0.1), run in a separate process so that its work never
shares this process's event loop or GIL. Every contender talks to that one
server, non-streamed, through an ``httpx.AsyncClient`` built the same way
(the same transport, timeouts and keep-alive pool).

What is measured: per repeat, each contender runs ``tasks`` tasks one after
the other (after a few untimed warm-up tasks on the same connection). The
overhead is the wall time of those tasks minus the time spent inside the
model's HTTP exchanges, divided by the number of tool-calling steps (three
per task). The HTTP time is taken by :class:`TimedTransport`, the
``httpx`` transport every contender's client uses: the clock runs from the
moment the request is handed to httpx's connection pool until the last byte
of the response body has been read, so it covers the server's handling, the
loopback network and httpcore's own HTTP/1.1 work, the same for everyone.
What remains is the framework: building messages and the request, JSON
encoding and decoding, validating the model's answer, routing, running the
tool, state updates, and the event-loop hops in between. A step's figure
includes a third of the final reply's round (four model calls per task, three
steps). Each figure is the median over the repeats; contenders take turns
within each repeat.

Checked, outside the timed region: the four requests of one task of every
session carry the whole conversation (user, then assistant + tool per step,
the tool results' JSON, the three tool definitions); every timed task ends
with the scripted final reply; every contender made exactly four model calls
per task; and the server answered every request from its script.

Contenders:

``greenroom``
    The agent layer: a ``Coordinator`` with a ``conversation_pool`` of four
    ``Worker`` actors, each deciding with ``OpenAIClient`` (httpx + msgspec)
    and calling tools (``@tool``, ``ToolRegistry``) through its ``ToolBox``
    granted by ``ToolAccess``; the conversation is saved to a ``MemoryStore``
    at the end of each turn (greenroom always does). The caller does
    ``ref.ask(Request(...))`` on the Coordinator's router; tracing off.
``greenroom_traced``
    The same with tracing on (an in-memory ``Tracer``): reference only.
``langgraph``
    The idiomatic ReAct loop: a ``StateGraph(MessagesState)`` with a model
    node and the prebuilt ``ToolNode`` (langchain-core ``@tool`` tools),
    ``tools_condition`` between them, ``graph.ainvoke``. The model node makes
    the call as a bare httpx POST with ``json`` and turns the answer into an
    ``AIMessage``: the thinnest model call there is, so the figure is
    LangGraph's own cost and not a client library's.
``autogen``
    autogen-core's tool-use agent (its docs' "Tools" guide, looped until the
    model is done): a ``RoutedAgent`` on a
    ``SingleThreadedAgentRuntime`` that loops ``model_client.create`` and
    runs each ``FunctionCall`` with ``FunctionTool.run_json`` until the model
    replies with text; the caller does ``runtime.send_message``. The model
    client is a minimal ``ChatCompletionClient`` making the same bare httpx
    call; the agent hands it tool schemas computed once.
``autogen_toolagent``
    autogen-core's other idiom, ``ToolAgent`` and ``tool_agent_caller_loop``:
    each tool call is a message to a tool agent. Reference only.
``langgraph_sdk`` / ``autogen_sdk``
    The peers as they are usually deployed: the model call goes through the
    official ``openai`` client (what langchain-openai's ``ChatOpenAI`` and
    autogen-ext's ``OpenAIChatCompletionClient`` use; neither is installed,
    and both do more per call than the node and client here), and the autogen
    agent passes its ``Tool`` objects to ``create`` as the docs do, so their
    schemas are derived again on every call (as autogen-ext's
    ``convert_tools`` does). Reference only: most of the difference from the
    rows above is the openai client, not the framework.

Ratios: ``overhead_vs_<peer>`` is the peer's overhead per step divided by
greenroom's (tracing off), so above 1 means greenroom is leaner. The issue's
target is above 1 for ``overhead_vs_langgraph`` and ``overhead_vs_autogen``;
a miss is printed as BELOW (the script does not fail on it).
``traced_vs_untraced`` is greenroom's overhead untraced over traced (1 means
tracing costs nothing).

Sizes: 300 timed tasks per repeat, 5 repeats (--quick: 60 tasks, 3 repeats),
each preceded by 5 untimed warm-up tasks, plus one untimed warm-up repeat of
every contender at the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import _harness as h
import httpx
import msgspec
import openai
from autogen_core import (
    AgentId,
    CancellationToken,
    FunctionCall,
    MessageContext,
    RoutedAgent,
    SingleThreadedAgentRuntime,
    message_handler,
)
from autogen_core.models import (
    AssistantMessage,
    ChatCompletionClient,
    CreateResult,
    FunctionExecutionResult,
    FunctionExecutionResultMessage,
    LLMMessage,
    ModelInfo,
    RequestUsage,
    SystemMessage,
    UserMessage,
)
from autogen_core.tool_agent import ToolAgent, tool_agent_caller_loop
from autogen_core.tools import FunctionTool, Tool, ToolSchema
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    convert_to_openai_messages,
)
from langchain_core.tools import tool as lc_tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import BaseModel

import greenroom as gr
from greenroom.agent import (
    Answer,
    ContextBuilder,
    Coordinator,
    Request,
    Worker,
    conversation_pool,
    conversation_scope,
)
from greenroom.decide import ModelConfig, OpenAIClient
from greenroom.tools import PURE, ToolAccess, ToolRegistry, tool
from greenroom.trace import Tracer

# The peers' own tracing stays off whatever the environment says: we measure the runtime.
os.environ["LANGSMITH_TRACING"] = "false"
os.environ["LANGCHAIN_TRACING_V2"] = "false"

RUN_TIMEOUT = 120.0  # seconds for one repeat of one contender; a hang fails the benchmark
STEPS = 3  # tool-calling steps per task (then one final reply: four model calls)
WARM_TASKS = 5  # untimed tasks at the start of every session (connection, caches)
MODEL = "scripted"
SYSTEM = "You are the support agent of an online shop. Use the tools; answer in one sentence."
USER = "Where is order 1042, when does it arrive and what did shipping cost?"
ORDER = 1042
# (tool name, the key its result adds, the value): one per step, in the order the model calls them
CALLS = (
    ("lookup_order", "status", "shipped"),
    ("carrier_eta", "arrives", "Friday"),
    ("shipping_cost", "cost", "4.90 EUR"),
)
FINAL = "Order 1042 is shipped, arrives on Friday; shipping cost 4.90 EUR."
TARGET = 1.0  # the peers' overhead over greenroom's must be above this


@dataclass(frozen=True, slots=True)
class Sizes:
    tasks: int  # timed tasks per repeat
    warmup_tasks: int  # tasks of the untimed warm-up repeat


FULL = Sizes(tasks=300, warmup_tasks=30)
QUICK = Sizes(tasks=60, warmup_tasks=10)


# --------------------------------------------------------------------------- the model server


SERVER_CODE = r"""
import json, sys
import anyio
from greenroom.testing import ScriptedModelServer, ScriptedToolCall

async def main() -> None:
    spec = json.loads(sys.argv[1])
    async with ScriptedModelServer() as server:
        for _ in range(spec["tasks"]):
            for i, (name, arguments) in enumerate(spec["calls"], 1):
                server.call_tools(ScriptedToolCall(name=name, arguments=arguments, id=f"call_{i}"))
            server.reply(spec["final"])
        print(server.base_url, flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the benchmark closes stdin
        chats = sum(1 for r in server.requests if r.path.endswith("/chat/completions"))
        print(json.dumps({"chats": chats, "unscripted": server.unscripted,
                          "pending": server.pending}), flush=True)

anyio.run(main)
"""


class ModelServer:
    """The scripted server in a child process, scripted for ``tasks`` tasks in a row."""

    def __init__(self, tasks: int) -> None:
        self.tasks = tasks
        spec = {
            "tasks": tasks,
            "calls": [[name, {"order": ORDER}] for name, _, _ in CALLS],
            "final": FINAL,
        }
        self._proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("http://"):
            self._proc.kill()
            raise RuntimeError(f"the scripted model server did not start (said {line!r})")
        self.base_url = line

    def close(self) -> dict[str, int]:
        """Stop the server; what it served."""
        out, _ = self._proc.communicate(timeout=30)
        if self._proc.returncode != 0:
            raise RuntimeError(f"the scripted model server exited with {self._proc.returncode}")
        stats: dict[str, int] = json.loads(out.strip().splitlines()[-1])
        return stats

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


# --------------------------------------------------------------------------- HTTP, timed


class TimedTransport(httpx.AsyncBaseTransport):
    """httpx's own transport, with a clock around each exchange (request out, whole body in).

    The body is read inside the clock and handed on in memory, so whatever the
    client does with the response afterwards is outside it.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.seconds = 0.0
        self.calls = 0
        self.recorded: list[tuple[bytes, bytes]] | None = None  # (request, response) bodies

    def reset(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        start = time.perf_counter()
        response = await self._inner.handle_async_request(request)
        try:
            body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
        finally:
            await response.aclose()
        self.seconds += time.perf_counter() - start
        self.calls += 1
        if self.recorded is not None:
            self.recorded.append((request.content, body))
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=body,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


def http_client(transport: TimedTransport) -> httpx.AsyncClient:
    """The HTTP client every contender gets: greenroom's ``OpenAIClient`` settings."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(60.0, connect=10.0),
        follow_redirects=False,
    )


# A model call as the peers make it: OpenAI messages and tools in, the assistant message out
# as {"content": str | None, "tool_calls": [{"id", "name", "arguments": <JSON text>}]}.
ChatFn = Callable[[list[dict[str, Any]], list[dict[str, Any]]], Awaitable[dict[str, Any]]]


def sdk_chat(http: httpx.AsyncClient, base_url: str) -> ChatFn:
    """A model call through the official ``openai`` client, as the peers' integrations make it."""
    client = openai.AsyncOpenAI(
        base_url=base_url,
        api_key="unused",
        http_client=http,  # type: ignore[arg-type]
        max_retries=0,
    )

    async def chat(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        completion = await client.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
        )
        message = completion.choices[0].message
        calls = [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in message.tool_calls or ()
            if c.type == "function"
        ]
        return {"content": message.content, "tool_calls": calls}

    return chat


def httpx_chat(http: httpx.AsyncClient, base_url: str) -> ChatFn:
    """A model call as a bare httpx POST with ``json``: no SDK."""
    url = base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json", "Accept": "application/json"}

    async def chat(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        body = json.dumps({"model": MODEL, "messages": messages, "tools": tools})
        response = await http.post(url, content=body, headers=headers)
        response.raise_for_status()
        message = json.loads(response.content)["choices"][0]["message"]
        calls = [
            {"id": c["id"], "name": c["function"]["name"], "arguments": c["function"]["arguments"]}
            for c in message.get("tool_calls") or ()
        ]
        return {"content": message.get("content"), "tool_calls": calls}

    return chat


# --------------------------------------------------------------------------- the tools


async def _lookup(order: int) -> dict[str, Any]:
    return {"order": order, "status": "shipped"}


async def _eta(order: int) -> dict[str, Any]:
    return {"order": order, "arrives": "Friday"}


async def _cost(order: int) -> dict[str, Any]:
    return {"order": order, "cost": "4.90 EUR"}


# --------------------------------------------------------------------------- contenders


RunTask = Callable[[int], Awaitable[str]]


class Contender(Protocol):
    name: str

    def session(
        self, http: httpx.AsyncClient, base_url: str
    ) -> contextlib.AbstractAsyncContextManager[RunTask]:
        """Set the agent up; yield a function that runs task ``i`` and returns the final text."""
        ...


# -- greenroom


class OrderInput(msgspec.Struct, frozen=True, kw_only=True):
    order: int


class StatusOutput(msgspec.Struct, frozen=True, kw_only=True):
    order: int
    status: str


class EtaOutput(msgspec.Struct, frozen=True, kw_only=True):
    order: int
    arrives: str


class CostOutput(msgspec.Struct, frozen=True, kw_only=True):
    order: int
    cost: str


@tool(effect=PURE)
async def lookup_order(input: OrderInput) -> StatusOutput:
    """Look an order's status up."""
    return StatusOutput(**await _lookup(input.order))


@tool(effect=PURE)
async def carrier_eta(input: OrderInput) -> EtaOutput:
    """Ask the carrier when an order arrives."""
    return EtaOutput(**await _eta(input.order))


@tool(effect=PURE)
async def shipping_cost(input: OrderInput) -> CostOutput:
    """What shipping an order cost."""
    return CostOutput(**await _cost(input.order))


CONVERSATIONS = conversation_scope("bench.conversations", owner="BenchWorker")


class BenchWorker(Worker):
    writes = (CONVERSATIONS,)


class Greenroom:
    """greenroom's agent layer: Coordinator -> pooled Worker -> OpenAIClient + ToolBox."""

    name = "greenroom"
    traced = False

    @contextlib.asynccontextmanager
    async def session(self, http: httpx.AsyncClient, base_url: str) -> AsyncIterator[RunTask]:
        config = ModelConfig(model=MODEL, base_url=base_url)
        names = [t.name for t in (lookup_order, carrier_eta, shipping_cost)]
        access = ToolAccess(
            ToolRegistry([lookup_order, carrier_eta, shipping_cost]),
            grants={"BenchWorker": names},
        )
        async with OpenAIClient(
            config, argument_types=dict.fromkeys(names, OrderInput), http_client=http
        ) as client:
            worker = gr.ChildSpec(
                actor=BenchWorker,
                args=(client, ContextBuilder(system=SYSTEM)),
                kwargs={"conversations": CONVERSATIONS},
                retry=gr.RetryPolicy(max_attempts=1),  # a failure is a benchmark error
            )
            coordinator = Coordinator(
                "agents",
                routes={Request: "workers"},
                pools=[conversation_pool("workers", worker, size=4)],
            )
            extensions: list[gr.Extension] = [gr.StoreAccess(gr.MemoryStore()), access]
            tracer = Tracer() if self.traced else None
            async with gr.Runtime(extensions=extensions, tracer=tracer) as rt:
                desk = await coordinator.start(rt)
                session = id(rt)

                async def run(i: int) -> str:
                    request = Request(conversation=f"c-{session:x}-{i}", text=USER, user="ada")
                    answer = await desk.ask(request, timeout=RUN_TIMEOUT)
                    assert isinstance(answer, Answer), answer
                    if answer.status != "replied":
                        raise RuntimeError(f"greenroom: the turn ended {answer.status}: {answer}")
                    return answer.text

                yield run


class GreenroomTraced(Greenroom):
    name = "greenroom_traced"
    traced = True


# -- LangGraph


@lc_tool("lookup_order")
async def lc_lookup_order(order: int) -> dict[str, Any]:
    """Look an order's status up."""
    return await _lookup(order)


@lc_tool("carrier_eta")
async def lc_carrier_eta(order: int) -> dict[str, Any]:
    """Ask the carrier when an order arrives."""
    return await _eta(order)


@lc_tool("shipping_cost")
async def lc_shipping_cost(order: int) -> dict[str, Any]:
    """What shipping an order cost."""
    return await _cost(order)


LC_TOOLS = [lc_lookup_order, lc_carrier_eta, lc_shipping_cost]


class LangGraph:
    """A StateGraph ReAct loop: model node <-> ToolNode, routed by tools_condition."""

    def __init__(self, name: str, make_chat: Callable[[httpx.AsyncClient, str], ChatFn]) -> None:
        self.name = name
        self.make_chat = make_chat

    @contextlib.asynccontextmanager
    async def session(self, http: httpx.AsyncClient, base_url: str) -> AsyncIterator[RunTask]:
        chat = self.make_chat(http, base_url)
        schemas = [convert_to_openai_tool(t) for t in LC_TOOLS]
        system = {"role": "system", "content": SYSTEM}

        async def model(state: MessagesState) -> dict[str, Any]:
            messages = [system, *convert_to_openai_messages(state["messages"])]
            answer = await chat(messages, schemas)
            calls = [
                {
                    "name": c["name"],
                    "args": json.loads(c["arguments"]),
                    "id": c["id"],
                    "type": "tool_call",
                }
                for c in answer["tool_calls"]
            ]
            return {"messages": [AIMessage(content=answer["content"] or "", tool_calls=calls)]}

        builder = StateGraph(MessagesState)
        builder.add_node("model", model)
        builder.add_node("tools", ToolNode(LC_TOOLS))
        builder.add_edge(START, "model")
        builder.add_conditional_edges("model", tools_condition)
        builder.add_edge("tools", "model")
        graph = builder.compile()

        async def run(i: int) -> str:
            state = await graph.ainvoke({"messages": [HumanMessage(content=USER)]})
            return str(state["messages"][-1].content)

        yield run


# -- autogen-core


@dataclass
class UserTask:
    content: str


@dataclass
class AgentReply:
    content: str


# Typed results (pydantic models), so autogen sends JSON, not a dict's repr.
class AgStatus(BaseModel):
    order: int
    status: str


class AgEta(BaseModel):
    order: int
    arrives: str


class AgCost(BaseModel):
    order: int
    cost: str


async def ag_lookup_order(order: int) -> AgStatus:
    return AgStatus(**await _lookup(order))


async def ag_carrier_eta(order: int) -> AgEta:
    return AgEta(**await _eta(order))


async def ag_shipping_cost(order: int) -> AgCost:
    return AgCost(**await _cost(order))


AG_TOOLS: list[Tool] = [
    FunctionTool(ag_lookup_order, "Look an order's status up.", name="lookup_order"),
    FunctionTool(ag_carrier_eta, "Ask the carrier when an order arrives.", name="carrier_eta"),
    FunctionTool(ag_shipping_cost, "What shipping an order cost.", name="shipping_cost"),
]


def _to_openai(messages: Sequence[LLMMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if isinstance(m, SystemMessage):
            out.append({"role": "system", "content": m.content})
        elif isinstance(m, UserMessage):
            out.append({"role": "user", "content": m.content})
        elif isinstance(m, AssistantMessage):
            if isinstance(m.content, str):
                out.append({"role": "assistant", "content": m.content})
            else:
                calls = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.content
                ]
                out.append({"role": "assistant", "content": None, "tool_calls": calls})
        else:
            out.extend(
                {"role": "tool", "tool_call_id": r.call_id, "content": r.content} for r in m.content
            )
    return out


class OpenAIModelClient(ChatCompletionClient):
    """A minimal autogen-core model client over an OpenAI-compatible endpoint."""

    def __init__(self, chat: ChatFn) -> None:
        self._chat = chat
        self._usage = RequestUsage(prompt_tokens=0, completion_tokens=0)

    async def create(
        self,
        messages: Sequence[LLMMessage],
        *,
        tools: Sequence[Tool | ToolSchema] = (),
        tool_choice: Any = "auto",
        json_output: Any = None,
        extra_create_args: Mapping[str, Any] = {},
        cancellation_token: CancellationToken | None = None,
    ) -> CreateResult:
        # As autogen-ext's ``convert_tools``: a Tool's schema is taken from ``tool.schema``,
        # which autogen-core derives from the tool's pydantic model on every access.
        schemas = [
            {"type": "function", "function": t.schema if isinstance(t, Tool) else t} for t in tools
        ]
        answer = await self._chat(_to_openai(messages), schemas)
        usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
        if answer["tool_calls"]:
            calls = [
                FunctionCall(id=c["id"], name=c["name"], arguments=c["arguments"])
                for c in answer["tool_calls"]
            ]
            return CreateResult(
                finish_reason="function_calls", content=calls, usage=usage, cached=False
            )
        return CreateResult(
            finish_reason="stop", content=answer["content"] or "", usage=usage, cached=False
        )

    def create_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def close(self) -> None:
        pass

    def actual_usage(self) -> RequestUsage:
        return self._usage

    def total_usage(self) -> RequestUsage:
        return self._usage

    def count_tokens(self, messages: Sequence[LLMMessage], **kwargs: Any) -> int:
        return 0

    def remaining_tokens(self, messages: Sequence[LLMMessage], **kwargs: Any) -> int:
        return 1 << 20

    @property
    def capabilities(self) -> Any:
        return self.model_info

    @property
    def model_info(self) -> ModelInfo:
        return ModelInfo(
            vision=False,
            function_calling=True,
            json_output=False,
            family="unknown",
            structured_output=False,
        )


class ToolUseAgent(RoutedAgent):
    """autogen-core's tool-use agent: create, run the calls, repeat until a text reply."""

    def __init__(
        self, model_client: ChatCompletionClient, tools: list[Tool], *, schemas_once: bool
    ) -> None:
        super().__init__("an agent with tools")
        self._model_client = model_client
        self._by_name = {t.name: t for t in tools}
        # The docs pass the Tool objects to create(); their schemas can be computed once instead.
        self._tools: list[Tool] | list[ToolSchema] = (
            [t.schema for t in tools] if schemas_once else tools
        )

    @message_handler
    async def handle_user_message(self, message: UserTask, ctx: MessageContext) -> AgentReply:
        session: list[LLMMessage] = [
            SystemMessage(content=SYSTEM),
            UserMessage(content=message.content, source="user"),
        ]
        while True:
            result = await self._model_client.create(
                messages=session, tools=self._tools, cancellation_token=ctx.cancellation_token
            )
            if isinstance(result.content, str):
                return AgentReply(content=result.content)
            session.append(AssistantMessage(content=result.content, source="assistant"))
            results = await asyncio.gather(
                *[self._execute(call, ctx.cancellation_token) for call in result.content]
            )
            session.append(FunctionExecutionResultMessage(content=results))

    async def _execute(
        self, call: FunctionCall, token: CancellationToken
    ) -> FunctionExecutionResult:
        tool = self._by_name[call.name]
        value = await tool.run_json(json.loads(call.arguments), token, call_id=call.id)
        return FunctionExecutionResult(
            call_id=call.id,
            content=tool.return_value_as_string(value),
            is_error=False,
            name=tool.name,
        )


class CallerAgent(RoutedAgent):
    """The ToolAgent idiom: tool calls go as messages to a ToolAgent (tool_agent_caller_loop)."""

    def __init__(self, model_client: ChatCompletionClient, tools: list[Tool]) -> None:
        super().__init__("a tool-calling agent")
        self._model_client = model_client
        self._schemas = [t.schema for t in tools]
        self._tool_agent = AgentId("tool_executor", self.id.key)

    @message_handler
    async def handle_user_message(self, message: UserTask, ctx: MessageContext) -> AgentReply:
        session: list[LLMMessage] = [
            SystemMessage(content=SYSTEM),
            UserMessage(content=message.content, source="user"),
        ]
        generated = await tool_agent_caller_loop(
            self,
            self._tool_agent,
            self._model_client,
            session,
            self._schemas,
            ctx.cancellation_token,
        )
        last = generated[-1]
        assert isinstance(last, AssistantMessage)
        assert isinstance(last.content, str)
        return AgentReply(content=last.content)


class Autogen:
    """autogen-core: a RoutedAgent on a SingleThreadedAgentRuntime, asked with send_message."""

    def __init__(
        self,
        name: str,
        make_chat: Callable[[httpx.AsyncClient, str], ChatFn],
        *,
        tool_agent: bool = False,
        schemas_once: bool = True,
    ) -> None:
        self.name = name
        self.make_chat = make_chat
        self.tool_agent = tool_agent
        self.schemas_once = schemas_once

    @contextlib.asynccontextmanager
    async def session(self, http: httpx.AsyncClient, base_url: str) -> AsyncIterator[RunTask]:
        model_client = OpenAIModelClient(self.make_chat(http, base_url))
        runtime = SingleThreadedAgentRuntime()
        if self.tool_agent:
            await ToolAgent.register(
                runtime, "tool_executor", lambda: ToolAgent("tool executor", AG_TOOLS)
            )
            await CallerAgent.register(
                runtime, "agent", lambda: CallerAgent(model_client, AG_TOOLS)
            )
        else:
            await ToolUseAgent.register(
                runtime,
                "agent",
                lambda: ToolUseAgent(model_client, AG_TOOLS, schemas_once=self.schemas_once),
            )
        agent = AgentId("agent", "default")
        runtime.start()
        try:

            async def run(i: int) -> str:
                reply = await runtime.send_message(UserTask(content=USER), agent)
                assert isinstance(reply, AgentReply), reply
                return reply.content

            yield run
        finally:
            await runtime.stop()


# --------------------------------------------------------------------------- measuring


@dataclass(slots=True)
class Run:
    """One timed repeat of one contender."""

    wall: float
    model: float
    calls: int
    tasks: int

    @property
    def overhead_per_step(self) -> float:
        return (self.wall - self.model) / (self.tasks * STEPS)

    @property
    def model_per_call(self) -> float:
        return self.model / self.calls


def check_exchange(who: str, recorded: list[tuple[bytes, bytes]]) -> None:
    """The four requests of one task carried the whole conversation (checked once per session)."""
    if len(recorded) != STEPS + 1:
        raise AssertionError(
            f"{who}: {len(recorded)} model calls in one task, expected {STEPS + 1}"
        )
    for n, (request, _) in enumerate(recorded):
        body = json.loads(request)
        roles = [m["role"] for m in body["messages"] if m["role"] != "system"]
        expected = ["user"] + ["assistant", "tool"] * n
        if roles != expected:
            raise AssertionError(f"{who}: request {n + 1} has roles {roles}, expected {expected}")
        names = sorted(t["function"]["name"] for t in body.get("tools", ()))
        if names != sorted(c[0] for c in CALLS):
            raise AssertionError(f"{who}: request {n + 1} offers tools {names}")
        tool_results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        for (_name, key, value), content in zip(CALLS, tool_results, strict=False):
            result = json.loads(content)
            if result.get(key) != value or result.get("order") != ORDER:
                raise AssertionError(f"{who}: tool result {content!r}, expected {key}={value!r}")


async def one_repeat(contender: Contender, base_url: str, tasks: int) -> Run:
    transport = TimedTransport()
    async with http_client(transport) as http, contender.session(http, base_url) as run:
        transport.recorded = []
        answer = await run(-1)
        check_exchange(contender.name, transport.recorded)
        transport.recorded = None
        for i in range(WARM_TASKS - 1):
            await run(-2 - i)
        h.settle()
        transport.reset()
        start = time.perf_counter()
        for i in range(tasks):
            answer = await run(i)
        wall = time.perf_counter() - start
        model, calls = transport.seconds, transport.calls
    if answer != FINAL:
        raise AssertionError(f"{contender.name}: final answer {answer!r}, expected {FINAL!r}")
    if calls != tasks * (STEPS + 1):
        raise AssertionError(
            f"{contender.name}: {calls} model calls, expected {tasks * (STEPS + 1)}"
        )
    return Run(wall=wall, model=model, calls=calls, tasks=tasks)


def run_repeat(contender: Contender, base_url: str, tasks: int) -> Run:
    async def bounded() -> Run:
        deadline = asyncio.timeout(RUN_TIMEOUT)
        try:
            async with deadline:
                return await one_repeat(contender, base_url, tasks)
        except TimeoutError as error:
            if deadline.expired():
                raise RuntimeError(
                    f"{contender.name} did not finish within {RUN_TIMEOUT:g} s"
                ) from error
            raise

    return asyncio.run(bounded())


@dataclass(slots=True)
class Figures:
    runs: list[Run] = field(default_factory=list)

    def overhead_us(self) -> float:
        return h.median([r.overhead_per_step for r in self.runs]) * 1e6

    def model_us(self) -> float:
        return h.median([r.model_per_call for r in self.runs]) * 1e6

    def task_ms(self) -> float:
        return h.median([r.wall / r.tasks for r in self.runs]) * 1e3


# ratio name: (peer, target or None for reference only)
RATIOS: dict[str, tuple[str, float | None]] = {
    "overhead_vs_langgraph": ("langgraph", TARGET),
    "overhead_vs_autogen": ("autogen", TARGET),
    "overhead_vs_autogen_toolagent": ("autogen_toolagent", None),
    "overhead_vs_langgraph_sdk": ("langgraph_sdk", None),
    "overhead_vs_autogen_sdk": ("autogen_sdk", None),
}


def main() -> None:
    args = h.parse_args(__doc__.splitlines()[0] if __doc__ else "agent benchmark")
    sizes = QUICK if args.quick else FULL
    contenders: list[Contender] = [
        Greenroom(),
        GreenroomTraced(),
        LangGraph("langgraph", httpx_chat),
        Autogen("autogen", httpx_chat),
        Autogen("autogen_toolagent", httpx_chat, tool_agent=True),
        LangGraph("langgraph_sdk", sdk_chat),
        Autogen("autogen_sdk", sdk_chat, schemas_once=False),
    ]

    def log(text: str) -> None:
        print(f"  .. {text}", flush=True)

    print(
        f"agent benchmark ({'quick' if args.quick else 'full'}, median of {args.repeat}): "
        f"{sizes.tasks} tasks per repeat, {STEPS} tool-calling steps + 1 reply per task, "
        "scripted OpenAI-compatible server in a child process on 127.0.0.1"
    )
    per_session = WARM_TASKS
    total = len(contenders) * (sizes.warmup_tasks + per_session)
    total += args.repeat * len(contenders) * (sizes.tasks + per_session)
    server = ModelServer(total)
    figures = {c.name: Figures() for c in contenders}
    wall = time.perf_counter()
    try:
        log("warming up")
        for c in contenders:
            run_repeat(c, server.base_url, sizes.warmup_tasks)
        for rep in range(args.repeat):
            for c in contenders:
                figures[c.name].runs.append(run_repeat(c, server.base_url, sizes.tasks))
            log(f"repeat {rep + 1}/{args.repeat} done")
        stats = server.close()
    finally:
        server.kill()
    wall = time.perf_counter() - wall
    expected_chats = total * (STEPS + 1)
    if stats["chats"] != expected_chats or stats["unscripted"] or stats["pending"]:
        raise RuntimeError(f"the model server saw {stats}, expected {expected_chats} chats")

    overhead = {name: f.overhead_us() for name, f in figures.items()}
    mine = overhead["greenroom"]
    ratios: dict[str, float | None] = {
        key: overhead[peer] / mine if mine > 0 else None for key, (peer, _t) in RATIOS.items()
    }
    traced = overhead["greenroom_traced"]
    ratios["traced_vs_untraced"] = mine / traced if traced > 0 else None

    print()
    rows = [
        [
            name,
            f"{overhead[name]:.0f}",
            f"{overhead[name] * STEPS / 1e3:.2f}",
            f"{f.model_us():.0f}",
            f"{f.task_ms():.2f}",
        ]
        for name, f in figures.items()
    ]
    h.print_table(
        ["contender", "overhead µs/step", "overhead ms/task", "model µs/call", "wall ms/task"],
        rows,
    )
    print()
    print("greenroom ratios (the peer's overhead / greenroom's; above 1 = greenroom leaner):")
    table = []
    for key, (_peer, target) in RATIOS.items():
        value = ratios[key]
        shown = f"{value:.2f}" if value is not None else "-"
        if target is None:
            table.append([key, shown, "-", "reference"])
        else:
            met = value is not None and value > target
            table.append([key, shown, f"> {target:g}", "ok" if met else "BELOW"])
    value = ratios["traced_vs_untraced"]
    table.append(
        ["traced_vs_untraced", f"{value:.2f}" if value is not None else "-", "-", "reference"]
    )
    h.print_table(["ratio", "value", "target", ""], table)
    print(f"\nwall time {wall:.1f} s")

    if args.json:
        h.emit_json(
            {
                "benchmark": "agent",
                "mode": "quick" if args.quick else "full",
                "repeat": args.repeat,
                "sizes": {
                    "tasks": sizes.tasks,
                    "steps_per_task": STEPS,
                    "model_calls_per_task": STEPS + 1,
                    "warm_tasks_per_session": WARM_TASKS,
                },
                "environment": h.environment(),
                "overhead_us_per_step": overhead,
                "model_us_per_call": {n: f.model_us() for n, f in figures.items()},
                "wall_ms_per_task": {n: f.task_ms() for n, f in figures.items()},
                "ratios": ratios,
                "targets": {k: t for k, (_p, t) in RATIOS.items() if t is not None},
                "wall_seconds": wall,
            }
        )


if __name__ == "__main__":
    main()
