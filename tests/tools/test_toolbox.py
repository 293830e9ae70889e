"""Tools called from actors in a real Runtime: grants, refusals, records, delegation, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

import greenroom as gr
from greenroom.tools import (
    PURE,
    ArgumentNotAllowed,
    BudgetExhausted,
    Delegation,
    Fetch,
    FetchInput,
    FetchOutput,
    Grant,
    GrantExpired,
    GrantRevoked,
    GrantWidened,
    HttpClient,
    InvalidGrant,
    Invocation,
    Proceed,
    Tool,
    ToolAccess,
    ToolBox,
    ToolCall,
    ToolError,
    ToolFailed,
    ToolInputError,
    ToolNotGranted,
    ToolOutputError,
    ToolRegistry,
    UnknownTool,
    tool,
)
from tests.tools._inputs import Done, Flat
from tests.tools._server import LocalServer, reply

pytestmark = pytest.mark.anyio

NOW = 1_000_000.0
ONE_ATTEMPT = gr.RetryPolicy(max_attempts=1, backoff=gr.Backoff(initial=0.0, maximum=0.0))


class Call(gr.Message):
    tool: str
    arguments: str


class CallTwice(gr.Message):
    tool: str
    arguments: str


class Delegate(gr.Message):
    to: str
    urls: tuple[str, ...]
    budget: int | None = None


class Accept(gr.Message):
    delegation: Delegation


class Crash(gr.Message):
    pass


class Caller(gr.Actor):
    """Calls tools for the test; a ToolError is an answer, never a crash."""

    def __init__(self, errors: list[ToolError]) -> None:
        self.errors = errors

    @gr.handler
    async def call(self, msg: Call) -> str:
        try:
            out = await self.ctx.service(ToolBox).call(msg.tool, msg.arguments)
        except ToolError as exc:
            self.errors.append(exc)
            return type(exc).__name__
        return msgspec.json.encode(out).decode()

    @gr.handler
    async def twice(self, msg: CallTwice) -> str:
        box = self.ctx.service(ToolBox)
        await box.call(msg.tool, msg.arguments)
        await box.call(msg.tool, msg.arguments)
        return "ok"

    @gr.handler
    async def delegate(self, msg: Delegate) -> Delegation | str:
        box = self.ctx.service(ToolBox)
        held = Grant("fetch", narrow={"url": msg.urls}, budget=msg.budget)
        try:
            return box.delegate(held, to=msg.to)
        except gr.GreenroomError as exc:
            return type(exc).__name__

    @gr.handler
    async def accept(self, msg: Accept) -> str:
        try:
            self.ctx.service(ToolBox).accept(msg.delegation)
        except ToolError as exc:
            return type(exc).__name__
        return "accepted"

    @gr.handler
    async def crash(self, msg: Crash) -> None:
        self.ctx.service(ToolBox)  # the instance holds a tool box when it dies
        raise RuntimeError("crash on purpose")


class Counter:
    """What ran: the tool side of 'the tool never ran'."""

    def __init__(self) -> None:
        self.runs: list[str] = []


COUNTER = Counter()


@tool(effect=PURE)
async def note(input: Flat) -> Done:
    """Note a query."""
    COUNTER.runs.append(input.query)
    return Done()


@tool(effect=PURE)
async def explode(input: Flat) -> Done:
    """Always fails."""
    raise KeyError("the backend lost it")


class Liar(Tool[Flat, Done]):
    """Returns the wrong type."""

    effect = PURE

    async def call(self, input: Flat) -> Done:
        return "not done"  # type: ignore[return-value]


@pytest.fixture
async def http(server: LocalServer) -> AsyncIterator[HttpClient]:
    server.routes["/a"] = reply(200, b"page a", {"Content-Type": "text/plain"})
    server.routes["/b"] = reply(200, b"page b")
    async with HttpClient(allow_hosts=[server.host]) as client:
        yield client


def _access(
    http: HttpClient, grants: dict[str, list[Grant | str]], **options: Any
) -> tuple[ToolAccess, list[ToolCall]]:
    records: list[ToolCall] = []
    registry = ToolRegistry([Fetch(http), note, explode, Liar()])
    access = ToolAccess(
        registry, grants=grants, on_call=records.append, clock=lambda: NOW, **options
    )
    return access, records


def _args(url: str) -> str:
    return msgspec.json.encode(FetchInput(url=url)).decode()


async def test_a_granted_call_returns_the_output_and_its_record_names_the_grant(
    server: LocalServer, http: HttpClient
) -> None:
    grant = Grant("fetch", budget=5)
    access, records = _access(http, {"Caller": [grant]})
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=([],))
        answer = await ref.ask(Call(tool="fetch", arguments=_args(server.url("/a"))), timeout=5)
    assert msgspec.json.decode(answer, type=FetchOutput).text == "page a"
    [record] = records
    assert (record.tool, record.actor, record.grant, record.delegation) == (
        "fetch",
        "caller",
        grant,
        None,
    )
    assert (record.ok, record.ran) == (True, True)
    assert record.output == FetchOutput(status=200, content_type="text/plain", text="page a")
    assert record.input == FetchInput(url=server.url("/a"))
    assert record.duration >= 0
    assert record.trace_id is not None


REFUSALS = [
    ("unknown", {"Caller": ["fetch"]}, "nope", UnknownTool),
    ("ungranted", {"Caller": ["note"]}, "fetch", ToolNotGranted),
    ("expired", {"Caller": [Grant("fetch", expires_at=NOW - 1)]}, "fetch", GrantExpired),
    ("exhausted", {"Caller": [Grant("fetch", budget=0)]}, "fetch", BudgetExhausted),
    (
        "narrowed",
        {"caller": [Grant("fetch", narrow={"url": ("http://127.0.0.1:1/only",)})]},
        "fetch",
        ArgumentNotAllowed,
    ),
]


@pytest.mark.parametrize(
    ("case", "grants", "name", "error"), REFUSALS, ids=[r[0] for r in REFUSALS]
)
async def test_a_refused_call_is_typed_logged_recorded_and_never_reaches_the_tool(
    server: LocalServer,
    http: HttpClient,
    logged: list[dict[str, object]],
    case: str,
    grants: dict[str, list[Grant | str]],
    name: str,
    error: type[ToolError],
) -> None:
    access, records = _access(http, grants)
    errors: list[ToolError] = []
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=(errors,))
        answer = await ref.ask(Call(tool=name, arguments=_args(server.url("/a"))), timeout=5)
        alive = await ref.ask(Call(tool="nope", arguments="{}"), timeout=5)
    assert answer == error.__name__
    assert alive == "UnknownTool"  # the actor lives on
    assert server.requests == []  # the tool never ran
    assert isinstance(errors[0], error)
    [record, _] = records
    assert record.error is not None
    assert record.error.type.endswith(error.__name__)
    assert not record.ran
    assert record.output is None
    if case in ("expired", "exhausted", "narrowed"):
        assert record.grant is not None
        assert record.grant.tool == "fetch"
    assert {
        "actor": "caller",
        "tool": name,
        "event": "tools.refused",
        "error": error.__name__,
        "level": "WARNING",
    }.items() <= logged[0].items()


async def test_the_budget_allows_exactly_its_calls(server: LocalServer, http: HttpClient) -> None:
    access, _ = _access(http, {"Caller": [Grant("fetch", budget=2)]})
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=([],))
        answers = [
            await ref.ask(Call(tool="fetch", arguments=_args(server.url("/a"))), timeout=5)
            for _ in range(3)
        ]
    assert [a.startswith("{") for a in answers] == [True, True, False]
    assert answers[2] == "BudgetExhausted"
    assert len(server.requests) == 2


async def test_invalid_arguments_are_an_input_error_and_the_tool_never_runs(
    server: LocalServer, http: HttpClient, logged: list[dict[str, object]]
) -> None:
    access, records = _access(http, {"Caller": ["fetch"]})
    errors: list[ToolError] = []
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=(errors,))
        answer = await ref.ask(Call(tool="fetch", arguments='{"url": 3}'), timeout=5)
    assert answer == "ToolInputError"
    assert isinstance(errors[0], ToolInputError)
    assert errors[0].path == "$.url"
    assert server.requests == []
    assert records[0].grant == Grant("fetch")
    assert not records[0].ran
    assert logged[0]["event"] == "tools.input_error"


async def test_a_grant_of_an_unregistered_tool_refuses_the_spawn(http: HttpClient) -> None:
    access, _ = _access(http, {"Caller": ["fetch", "teleport"]})
    async with gr.Runtime(extensions=[access]) as rt:
        with pytest.raises(InvalidGrant, match="teleport"):
            await rt.spawn(Caller, name="caller", args=([],))


async def test_two_grants_of_one_tool_for_one_actor_refuse_the_spawn(http: HttpClient) -> None:
    access, _ = _access(http, {"Caller": ["fetch"], "caller": [Grant("fetch", budget=1)]})
    async with gr.Runtime(extensions=[access]) as rt:
        with pytest.raises(InvalidGrant, match="two grants"):
            await rt.spawn(Caller, name="caller", args=([],))


async def test_a_failing_tool_is_tool_failed_chained_and_the_actor_lives(
    http: HttpClient,
) -> None:
    access, records = _access(http, {"Caller": ["explode", "liar"]})
    errors: list[ToolError] = []
    arguments = msgspec.json.encode(Flat(query="q", limit=1, exact=True)).decode()
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=(errors,))
        failed = await ref.ask(Call(tool="explode", arguments=arguments), timeout=5)
        lied = await ref.ask(Call(tool="liar", arguments=arguments), timeout=5)
    assert (failed, lied) == ("ToolFailed", "ToolOutputError")
    assert isinstance(errors[0], ToolFailed)
    assert isinstance(errors[0].__cause__, KeyError)
    assert isinstance(errors[1], ToolOutputError)
    assert [r.ran for r in records] == [True, True]


class Recorder:
    """An interceptor that records each invocation, and may answer instead of the tool."""

    def __init__(self, answer: msgspec.Struct | None = None) -> None:
        self.seen: list[Invocation] = []
        self.answer = answer

    async def intercept(self, invocation: Invocation, proceed: Proceed) -> msgspec.Struct:
        self.seen.append(invocation)
        if self.answer is not None:
            return self.answer
        return await proceed()


async def test_interceptors_see_every_fact_a_ledger_needs_and_steps_count_per_message(
    http: HttpClient,
) -> None:
    recorder = Recorder()
    access, _ = _access(http, {"Caller": ["note"]}, interceptors=[recorder])
    arguments = msgspec.json.encode(Flat(query="step", limit=1, exact=True)).decode()
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=([],))
        await ref.ask(CallTwice(tool="note", arguments=arguments), timeout=5)
        await ref.ask(Call(tool="note", arguments=arguments), timeout=5)
    first, second, third = recorder.seen
    assert [i.step for i in recorder.seen] == [0, 1, 0]
    assert first.message_id == second.message_id != third.message_id
    assert (first.effect, first.grant, first.attempt) == (PURE, Grant("note"), 1)
    assert first.input_hash == second.input_hash
    assert len(first.input_hash) == 64


async def test_an_interceptor_can_answer_without_running_the_tool(http: HttpClient) -> None:
    COUNTER.runs.clear()
    access, records = _access(http, {"Caller": ["note"]}, interceptors=[Recorder(Done(ok=False))])
    arguments = msgspec.json.encode(Flat(query="replayed", limit=1, exact=True)).decode()
    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Caller, name="caller", args=([],))
        assert await ref.ask(Call(tool="note", arguments=arguments), timeout=5) == '{"ok":false}'
    assert COUNTER.runs == []
    assert records[0].output == Done(ok=False)


async def test_a_delegation_narrows_and_its_calls_record_it(
    server: LocalServer, http: HttpClient
) -> None:
    a, b = server.url("/a"), server.url("/b")
    access, records = _access(http, {"lead": [Grant("fetch", narrow={"url": (a, b)})]})
    async with gr.Runtime(extensions=[access]) as rt:
        lead = await rt.spawn(Caller, name="lead", args=([],))
        worker = await rt.spawn(Caller, name="worker", args=([],))
        token = await lead.ask(Delegate(to="worker", urls=(a,)), timeout=5)
        assert isinstance(token, Delegation)
        assert await worker.ask(Accept(delegation=token), timeout=5) == "accepted"
        ok = await worker.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
        outside = await worker.ask(Call(tool="fetch", arguments=_args(b)), timeout=5)
    assert ok.startswith("{")
    assert outside == "ArgumentNotAllowed"
    assert [r.path for r in server.requests] == ["/a"]
    assert records[0].delegation == token.id
    assert records[0].grant == Grant("fetch", narrow={"url": (a,)})


@pytest.mark.parametrize(
    ("urls", "budget"),
    [(("/a", "/elsewhere"), None), (("/a",), 5)],
    ids=["wider values", "larger budget"],
)
async def test_a_delegation_cannot_widen_the_grant_it_comes_from(
    server: LocalServer, http: HttpClient, urls: tuple[str, ...], budget: int | None
) -> None:
    held = Grant("fetch", narrow={"url": (server.url("/a"),)}, budget=3)
    access, _ = _access(http, {"lead": [held]})
    wanted = tuple(server.url(u) for u in urls)
    async with gr.Runtime(extensions=[access]) as rt:
        lead = await rt.spawn(Caller, name="lead", args=([],))
        answer = await lead.ask(Delegate(to="worker", urls=wanted, budget=budget), timeout=5)
    assert answer == "GrantWidened"
    with pytest.raises(GrantWidened):
        held.narrowed(narrow={"url": wanted}, budget=budget)


def test_narrowed_inherits_what_it_does_not_change_and_may_only_narrow() -> None:
    held = Grant("fetch", narrow={"url": ("x", "y")}, expires_at=NOW, budget=3)
    child = held.narrowed(narrow={"url": ["x"]}, budget=1)
    assert child == Grant("fetch", narrow={"url": ("x",)}, expires_at=NOW, budget=1)
    assert held.covers(child)
    assert not child.covers(held)
    with pytest.raises(GrantWidened, match="expires"):
        held.narrowed(expires_at=NOW + 1)
    with pytest.raises(GrantWidened, match="lifts"):
        held.check_covers(Grant("fetch", budget=1, expires_at=NOW))
    assert Grant("f", narrow={"n": (1,)}).allows("n", 1.0)
    assert not Grant("f", narrow={"n": (1,)}).allows("n", True)


async def test_delegated_calls_spend_the_budget_of_the_grant_they_come_from(
    server: LocalServer, http: HttpClient
) -> None:
    a = server.url("/a")
    access, _ = _access(http, {"lead": [Grant("fetch", budget=2)]})
    async with gr.Runtime(extensions=[access]) as rt:
        lead = await rt.spawn(Caller, name="lead", args=([],))
        worker = await rt.spawn(Caller, name="worker", args=([],))
        token = await lead.ask(Delegate(to="worker", urls=(a,), budget=2), timeout=5)
        await worker.ask(Accept(delegation=token), timeout=5)
        await worker.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
        await worker.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
        lead_answer = await lead.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
    assert lead_answer == "BudgetExhausted"
    assert len(server.requests) == 2


async def test_a_restart_of_the_holder_revokes_its_delegations_and_theirs(
    server: LocalServer, http: HttpClient
) -> None:
    a = server.url("/a")
    access, _ = _access(http, {"lead": ["fetch"]})
    async with gr.Runtime(extensions=[access]) as rt:
        lead = await rt.spawn(Caller, name="lead", args=([],))
        worker = await rt.spawn(Caller, name="worker", args=([],), retry=ONE_ATTEMPT)
        helper = await rt.spawn(Caller, name="helper", args=([],))
        token = await lead.ask(Delegate(to="worker", urls=(a,)), timeout=5)
        assert await worker.ask(Accept(delegation=token), timeout=5) == "accepted"
        onward = await worker.ask(Delegate(to="helper", urls=(a,)), timeout=5)
        assert await helper.ask(Accept(delegation=onward), timeout=5) == "accepted"
        with pytest.raises(gr.HandlerError):
            await worker.ask(Crash(), timeout=5)
        after = await worker.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
        again = await worker.ask(Accept(delegation=token), timeout=5)
        downstream = await helper.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
        lead_still = await lead.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
    assert (after, again, downstream) == ("ToolNotGranted", "GrantRevoked", "ToolNotGranted")
    assert lead_still.startswith("{")
    assert len(server.requests) == 1  # only the lead's own call


async def test_a_configured_budget_carries_on_across_a_restart(
    server: LocalServer, http: HttpClient
) -> None:
    a = server.url("/a")
    access, _ = _access(http, {"worker": [Grant("fetch", budget=1)]})
    async with gr.Runtime(extensions=[access]) as rt:
        worker = await rt.spawn(Caller, name="worker", args=([],), retry=ONE_ATTEMPT)
        first = await worker.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
        with pytest.raises(gr.HandlerError):
            await worker.ask(Crash(), timeout=5)
        second = await worker.ask(Call(tool="fetch", arguments=_args(a)), timeout=5)
    assert first.startswith("{")
    assert second == "BudgetExhausted"
    assert len(server.requests) == 1


async def test_a_token_accepted_by_another_actor_or_forged_gives_nothing(
    server: LocalServer, http: HttpClient
) -> None:
    a = server.url("/a")
    access, _ = _access(http, {"lead": [Grant("fetch", narrow={"url": (a,)})]})
    async with gr.Runtime(extensions=[access]) as rt:
        lead = await rt.spawn(Caller, name="lead", args=([],))
        thief = await rt.spawn(Caller, name="thief", args=([],))
        token = await lead.ask(Delegate(to="worker", urls=(a,)), timeout=5)
        stolen = await thief.ask(Accept(delegation=token), timeout=5)
        forged = Delegation(id=12345, grant=Grant("fetch"), issuer="lead", holder="thief")
        made_up = await thief.ask(Accept(delegation=forged), timeout=5)
    assert (stolen, made_up) == ("GrantRevoked", "GrantRevoked")


async def test_definitions_offer_only_the_granted_tools_and_typed_calls_work(
    server: LocalServer, http: HttpClient
) -> None:
    access, records = _access(http, {"typed": ["fetch", "note"]})  # by name: a local class
    found = access.registry.get("fetch")
    assert isinstance(found, Fetch)
    fetch: Fetch = found

    class Typed(gr.Actor):
        @gr.handler
        async def go(self, msg: Call) -> tuple[list[str], str]:
            box = self.ctx.service(ToolBox)
            names = [d["function"]["name"] for d in box.definitions()]
            out = await box.call_typed(fetch, FetchInput(url=msg.arguments))
            return names, out.text

    async with gr.Runtime(extensions=[access]) as rt:
        ref = await rt.spawn(Typed, name="typed")
        names, text = await ref.ask(Call(tool="fetch", arguments=server.url("/b")), timeout=5)
    assert (names, text) == (["fetch", "note"], "page b")
    assert records[0].ok


async def test_a_handler_without_tool_access_gets_a_usage_error_naming_the_fix() -> None:
    async with gr.Runtime() as rt:
        ref = await rt.spawn(Caller, name="caller", args=([],), retry=ONE_ATTEMPT)
        with pytest.raises(gr.HandlerError, match="ToolBox"):
            await ref.ask(Call(tool="x", arguments="{}"), timeout=5)


def test_revoked_is_the_error_of_an_unknown_delegation() -> None:
    assert issubclass(GrantRevoked, ToolError)
