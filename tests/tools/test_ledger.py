"""The side-effect ledger: intents, receipts, and what a redelivered step may run again."""

from __future__ import annotations

import hashlib

import anyio
import msgspec
import pytest

import greenroom as gr
from greenroom.tools import (
    IRREVERSIBLE,
    PURE,
    Compensable,
    Effect,
    Grant,
    Idempotent,
    Invocation,
    Ledger,
    StepInputChanged,
    StepInterrupted,
    ToolAccess,
    ToolBox,
    ToolCall,
    ToolRegistry,
    tool,
)

pytestmark = pytest.mark.anyio


class SendInput(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    request: str = "r-1"


class SendOutput(msgspec.Struct, frozen=True, kw_only=True):
    id: str


EFFECTS: dict[str, Effect] = {
    "pure": PURE,
    "idempotent": Idempotent(key="request"),
    "compensable": Compensable(undo="unsend"),
    "irreversible": IRREVERSIBLE,
}


def _invocation(
    effect: Effect, *, to: str = "ada", step: int = 0, attempt: int = 1, call_id: int = 1
) -> Invocation:
    input = SendInput(to=to)
    return Invocation(
        call_id=call_id,
        tool="send",
        effect=effect,
        actor="mailer",
        grant=Grant("send"),
        delegation=None,
        input=input,
        input_hash=hashlib.sha256(msgspec.json.encode(input)).hexdigest(),
        message_id=42,
        attempt=attempt,
        step=step,
        trace_id=None,
        output_type=SendOutput,
    )


class Side:
    """The tool's side: how often it ran."""

    def __init__(self) -> None:
        self.runs = 0

    async def proceed(self) -> msgspec.Struct:
        self.runs += 1
        return SendOutput(id=f"m{self.runs}")

    async def fail(self) -> msgspec.Struct:
        self.runs += 1
        raise RuntimeError("connection reset after the request was sent")


async def _crash_between_intent_and_receipt(ledger: Ledger, invocation: Invocation) -> None:
    """Run the step until the tool is running, then cancel it: an intent, no receipt."""
    running = anyio.Event()

    async def hang() -> msgspec.Struct:
        running.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async with anyio.create_task_group() as tg:
        tg.start_soon(ledger.intercept, invocation, hang)
        await running.wait()
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("effect", ["idempotent", "compensable", "irreversible"])
async def test_a_step_with_a_receipt_returns_the_recorded_output_without_running(
    effect: str,
) -> None:
    ledger, tool = Ledger(gr.MemoryStore()), Side()
    first = await ledger.intercept(_invocation(EFFECTS[effect]), tool.proceed)
    again = await ledger.intercept(_invocation(EFFECTS[effect], attempt=2, call_id=2), tool.proceed)
    assert first == again == SendOutput(id="m1")
    assert type(again) is SendOutput  # decoded into the tool's Output type
    assert tool.runs == 1
    entry = await ledger.entry("mailer/42/0")
    assert entry is not None
    assert entry.receipt is not None
    assert (entry.tool, entry.effect, entry.call_id, entry.grant) == (
        "send",
        EFFECTS[effect],
        1,
        Grant("send"),
    )


async def test_a_pure_tool_bypasses_the_ledger_and_runs_every_time() -> None:
    ledger, tool = Ledger(gr.MemoryStore()), Side()
    for attempt in (1, 2):
        await ledger.intercept(_invocation(PURE, attempt=attempt), tool.proceed)
    assert tool.runs == 2
    assert await ledger.entries("mailer") == []


async def test_an_idempotent_step_interrupted_runs_again_with_the_same_key() -> None:
    ledger, tool = Ledger(gr.MemoryStore()), Side()
    await _crash_between_intent_and_receipt(ledger, _invocation(EFFECTS["idempotent"]))
    [(key, entry)] = await ledger.interrupted("mailer")
    assert (key, entry.receipt) == ("mailer/42/0", None)
    out = await ledger.intercept(_invocation(EFFECTS["idempotent"], attempt=2), tool.proceed)
    assert out == SendOutput(id="m1")
    assert tool.runs == 1
    assert await ledger.interrupted("mailer") == []


@pytest.mark.parametrize("effect", ["compensable", "irreversible"])
async def test_an_interrupted_step_that_must_not_rerun_fails_closed_naming_the_step(
    effect: str,
) -> None:
    ledger, tool = Ledger(gr.MemoryStore()), Side()
    await _crash_between_intent_and_receipt(ledger, _invocation(EFFECTS[effect], step=3))
    with pytest.raises(StepInterrupted) as caught:
        await ledger.intercept(_invocation(EFFECTS[effect], step=3, attempt=2), tool.proceed)
    assert tool.runs == 0
    error = caught.value
    assert isinstance(error, gr.NotRetryable)
    assert (error.actor, error.message_id, error.step, error.tool, error.effect) == (
        "mailer",
        42,
        3,
        "send",
        effect,
    )
    assert error.undo == ("unsend" if effect == "compensable" else None)
    assert "mailer" in str(error)
    assert "step 3" in str(error)
    assert "'send'" in str(error)
    if effect == "compensable":
        assert "'unsend'" in str(error)


@pytest.mark.parametrize("effect", ["compensable", "irreversible"])
async def test_a_tool_that_raised_leaves_an_intent_a_retry_will_not_rerun(effect: str) -> None:
    ledger, tool = Ledger(gr.MemoryStore()), Side()
    with pytest.raises(RuntimeError):
        await ledger.intercept(_invocation(EFFECTS[effect]), tool.fail)
    [(_, entry)] = await ledger.interrupted("mailer")
    assert entry.failure is not None
    assert "connection reset" in entry.failure.message
    with pytest.raises(StepInterrupted):
        await ledger.intercept(_invocation(EFFECTS[effect], attempt=2), tool.proceed)
    assert tool.runs == 1


@pytest.mark.parametrize("effect", ["idempotent", "irreversible"])
async def test_a_step_redelivered_with_another_input_is_refused_and_nothing_runs(
    effect: str,
) -> None:
    ledger, tool = Ledger(gr.MemoryStore()), Side()
    await ledger.intercept(_invocation(EFFECTS[effect], to="ada"), tool.proceed)
    with pytest.raises(StepInputChanged) as caught:
        await ledger.intercept(_invocation(EFFECTS[effect], to="bob", attempt=2), tool.proceed)
    assert tool.runs == 1
    assert (caught.value.step, caught.value.recorded_tool) == (0, "send")
    assert isinstance(caught.value, gr.NotRetryable)


async def test_a_person_can_forget_or_complete_an_interrupted_step() -> None:
    ledger, tool = Ledger(gr.MemoryStore()), Side()
    irreversible = EFFECTS["irreversible"]
    await _crash_between_intent_and_receipt(ledger, _invocation(irreversible, step=0))
    await _crash_between_intent_and_receipt(ledger, _invocation(irreversible, step=1))
    await ledger.forget("mailer/42/0")  # it did not take effect: run it again
    await ledger.complete("mailer/42/1", SendOutput(id="checked"))  # it did: this is its output
    assert await ledger.intercept(_invocation(irreversible, step=0), tool.proceed) == SendOutput(
        id="m1"
    )
    assert await ledger.intercept(_invocation(irreversible, step=1), tool.proceed) == SendOutput(
        id="checked"
    )
    assert tool.runs == 1


# -- in a runtime ---------------------------------------------------------------

SENT: list[str] = []
FAIL_FIRST: list[bool] = []


@tool(effect=IRREVERSIBLE)
async def send(input: SendInput) -> SendOutput:
    """Send a message; it cannot be taken back."""
    SENT.append(input.to)
    if FAIL_FIRST and FAIL_FIRST.pop():
        raise ConnectionError("reset after sending")
    return SendOutput(id=f"sent-{len(SENT)}")


@tool(effect=PURE)
async def unsend(input: SendInput) -> SendOutput:
    """Unused undo, registered so Compensable tools could name it."""
    return SendOutput(id="")


class Send(gr.Message):
    to: str


class Mailer(gr.Actor):
    @gr.handler
    async def send(self, msg: Send) -> str:
        out = await self.ctx.service(ToolBox).call("send", {"to": msg.to})
        assert isinstance(out, SendOutput)
        return out.id


def _runtime(store: gr.MemoryStore, records: list[ToolCall]) -> gr.Runtime:
    access = ToolAccess(
        ToolRegistry([send, unsend]),
        grants={"Mailer": ["send"]},
        interceptors=[Ledger(store)],
        on_call=records.append,
    )
    return gr.Runtime(extensions=[access])


async def test_every_ledger_entry_is_reachable_from_its_tool_call_record() -> None:
    SENT.clear()
    store, records = gr.MemoryStore(), []
    async with _runtime(store, records) as rt:
        mailer = await rt.spawn(Mailer, name="mailer")
        assert await mailer.ask(Send(to="ada"), timeout=5) == "sent-1"
    [record] = records
    assert record.key is not None
    assert record.step == 0
    assert record.message_id is not None
    entry = await Ledger(store).entry(record.key)
    assert entry is not None
    assert entry.call_id == record.call_id
    assert entry.receipt is not None
    assert msgspec.json.decode(entry.receipt.output, type=SendOutput) == record.output


async def test_an_irreversible_tool_that_failed_is_dead_lettered_on_retry_not_rerun() -> None:
    SENT.clear()
    FAIL_FIRST[:] = [True]
    store, records = gr.MemoryStore(), []
    retry = gr.RetryPolicy(max_attempts=3, backoff=gr.Backoff(initial=0.0, maximum=0.0))
    async with _runtime(store, records) as rt:
        mailer = await rt.spawn(Mailer, name="mailer", retry=retry)
        with pytest.raises(gr.HandlerError, match="StepInterrupted") as caught:
            await mailer.ask(Send(to="ada"), timeout=5)
        assert caught.value.attempts == 2  # the failure was retried once, then failed closed
        [letter] = rt.dead_letters.list(actor="mailer")
    assert SENT == ["ada"]  # never twice
    assert letter.error.type.endswith("StepInterrupted")
    assert "irreversible tool 'send'" in letter.error.message
    first, second = records
    assert first.error is not None
    assert first.error.type.endswith("ToolFailed")
    assert second.error is not None
    assert second.error.type.endswith("StepInterrupted")
    assert first.key == second.key  # the retry named the same step
