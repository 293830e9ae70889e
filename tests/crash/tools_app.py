"""Tools on durable mailboxes and a durable store, run as a subprocess by the tool crash tests.

    python -m tests.crash.tools_app DIR MODE [TICKET]

DIR holds ``mailbox.db`` (SqliteMailboxes), ``store.db`` (SqliteStore: the
ledger and the approval tickets) and ``out.db``, the tools' own record of
every run (``runs``: tool, pid), written outside greenroom.

Modes:

* ``ledger`` (KILL = ``intent`` or ``receipt``, from the environment variable
  ``GREENROOM_KILL_AT``, empty for none): four workers, one per effect
  class, each handling one ``Go`` that calls its tool once. The first run
  (``GREENROOM_SEND=1``) sends the four messages. At ``intent`` each tool
  records its run, prints ``intent <tool>`` and blocks (the ledger's intent
  is committed, no receipt yet); at ``receipt`` an outermost interceptor
  prints ``receipt <tool>`` and blocks once the call returned (receipt
  committed, message not acked). The driver SIGKILLs on those lines.
  A run prints ``handled <tool> <run>`` (``run``: the Output's count, so a
  recorded receipt shows its old count) or ``dead <actor> <error type>``.
* ``park``: ``payer`` gets a ``Request`` and prints ``parked <ticket>``.
* ``approve TICKET``: ``payer`` gets ``Approve(TICKET)`` twice and prints
  ``settled <state>`` for each.

Every mode prints ``ready`` once started and ``stopped`` after SIGTERM.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import anyio
import msgspec

import greenroom as gr
from greenroom.mailbox import DeadLetter, DeadLetterReason, SqliteDeadLetters, SqliteMailboxes
from greenroom.tools import (
    IRREVERSIBLE,
    PURE,
    ApprovalGate,
    ApprovalPending,
    Approve,
    Compensable,
    Deny,
    Expire,
    Idempotent,
    Invocation,
    Ledger,
    Proceed,
    ToolAccess,
    ToolBox,
    ToolRegistry,
    tool,
)

OUT = Path(".")
KILL = os.environ.get("GREENROOM_KILL_AT", "")
DURABLE = gr.MailboxConfig(kind="durable")


class Act(msgspec.Struct, frozen=True, kw_only=True):
    key: str


class Ran(msgspec.Struct, frozen=True, kw_only=True):
    run: int


async def _run(name: str) -> Ran:
    """The effect: a row in out.db, outside greenroom; the count of this tool's runs."""
    with sqlite3.connect(OUT / "out.db", isolation_level=None) as db:
        db.execute("INSERT INTO runs VALUES (?, ?)", (name, os.getpid()))
        (count,) = db.execute("SELECT count(*) FROM runs WHERE tool = ?", (name,)).fetchone()
    if KILL == "intent":
        print(f"intent {name}", flush=True)
        await anyio.sleep_forever()
    return Ran(run=count)


@tool(effect=PURE)
async def pure_op(input: Act) -> Ran:
    """Pure."""
    return await _run("pure_op")


@tool(effect=Idempotent(key="key"))
async def idem_op(input: Act) -> Ran:
    """Idempotent on key."""
    return await _run("idem_op")


@tool(effect=Compensable(undo="undo_op"))
async def comp_op(input: Act) -> Ran:
    """Compensable."""
    return await _run("comp_op")


@tool(effect=IRREVERSIBLE)
async def irrev_op(input: Act) -> Ran:
    """Irreversible."""
    return await _run("irrev_op")


@tool(effect=PURE)
async def undo_op(input: Act) -> Ran:
    """The undo of comp_op (never called here)."""
    return Ran(run=0)


@tool(effect=IRREVERSIBLE, requires_approval=True)
async def pay(input: Act) -> Ran:
    """Pay: needs approval."""
    return await _run("pay")


TOOLS = ("pure_op", "idem_op", "comp_op", "irrev_op")


class KillPoint:
    """Outermost interceptor: blocks after the call returned (receipt written, not acked)."""

    async def intercept(self, invocation: Invocation, proceed: Proceed) -> msgspec.Struct:
        out = await proceed()
        if KILL == "receipt":
            print(f"receipt {invocation.tool}", flush=True)
            await anyio.sleep_forever()
        return out


class Go(gr.Message):
    key: str


class Request(gr.Message):
    key: str


class Worker(gr.Actor):
    def __init__(self, tool_name: str) -> None:
        self.tool_name = tool_name

    @gr.handler
    async def go(self, msg: Go) -> None:
        out = await self.ctx.service(ToolBox).call(self.tool_name, {"key": msg.key})
        assert isinstance(out, Ran)
        print(f"handled {self.tool_name} {out.run}", flush=True)


class Payer(gr.Actor):
    async def on_start(self) -> None:
        await self.ctx.service(ToolBox).restore()

    @gr.handler
    async def request(self, msg: Request) -> None:
        try:
            await self.ctx.service(ToolBox).call("pay", {"key": msg.key})
        except ApprovalPending as parked:
            print(f"parked {parked.ticket}", flush=True)
            return
        print("paid", flush=True)

    @gr.handler
    async def ticket(self, msg: Approve | Deny | Expire) -> None:
        settled = await self.ctx.service(ToolBox).settle(msg)
        print(f"settled {settled.state}", flush=True)


class Printing:
    """The durable dead letters, saying each one on stdout."""

    def __init__(self, inner: SqliteDeadLetters) -> None:
        self.inner = inner

    def add(self, letter: DeadLetter) -> None:
        self.inner.add(letter)
        print(f"dead {letter.actor} {letter.error.type.rsplit('.', 1)[-1]}", flush=True)

    def list(
        self,
        *,
        actor: str | None = None,
        reason: DeadLetterReason | None = None,
        since: float | None = None,
    ) -> list[DeadLetter]:
        return self.inner.list(actor=actor, reason=reason, since=since)


async def main(directory: str, mode: str, ticket: str) -> None:
    global OUT
    OUT = Path(directory)
    with sqlite3.connect(OUT / "out.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS runs (tool TEXT, pid INTEGER)")
    registry = ToolRegistry([pure_op, idem_op, comp_op, irrev_op, undo_op, pay])
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        async with (
            SqliteMailboxes(OUT / "mailbox.db", poll=0.2, lease=5.0) as boxes,
            gr.SqliteStore(OUT / "store.db") as store,
        ):
            access = ToolAccess(
                registry,
                grants={"Worker": list(TOOLS), "Payer": ["pay"]},
                approvals=ApprovalGate(store, timeout=600.0),
                interceptors=[KillPoint(), Ledger(store)],
            )
            sink = Printing(boxes.dead_letters)
            async with gr.Runtime(
                mailboxes={"durable": boxes}, dead_letters=sink, extensions=[access]
            ) as rt:
                await _start(rt, mode, ticket)
                print("ready", flush=True)
                async for _ in signals:
                    break
    print("stopped", flush=True)


async def _start(rt: gr.Runtime, mode: str, ticket: str) -> None:
    if mode == "ledger":
        workers = [
            await rt.spawn(Worker, name=f"w-{name}", args=(name,), mailbox=DURABLE)
            for name in TOOLS
        ]
        if os.environ.get("GREENROOM_SEND"):
            for worker in workers:
                await worker.tell(Go(key="k1"))  # returns once committed
        return
    payer = await rt.spawn(Payer, name="payer", mailbox=DURABLE)
    if mode == "park":
        await payer.tell(Request(key="invoice-7"))
    elif mode == "approve":
        await payer.tell(Approve(ticket=ticket, by="driver"))
        await payer.tell(Approve(ticket=ticket, by="driver, again"))


if __name__ == "__main__":
    anyio.run(
        main, sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "", backend="asyncio"
    )
