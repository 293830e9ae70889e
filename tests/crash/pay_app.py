"""A durable shop that pays orders through a forwarding router; forked by the random-kill test.

    python -m tests.crash.pay_app        (a zygote: reads commands on stdin)

The zygote imports greenroom once, then for each ``run DIR MODE SYNC FIRST``
line on its stdin forks a child that runs :func:`main`, prints
``child PID``, waits for it and prints ``exit PID STATUS``. Forking from
one warm process makes a run start in milliseconds instead of the second
a fresh interpreter takes, so many random kills fit in a few seconds. The
driver SIGKILLs the child by its pid.

A run, in directory DIR: ``SqliteMailboxes`` (``mailbox.db``, sqlite
``synchronous`` = SYNC) for every actor, a ``SqliteStore`` (``store.db``)
for the side-effect ledger, and a :class:`~greenroom.agent.Coordinator`
``shop`` whose Router forwards each ``Order`` to a pool of ``Payer``
workers (consistent hash on the order). A Payer calls the IRREVERSIBLE
``pay`` tool once per order; the tool appends ``ORDER PID`` to
``paid.log`` itself (the ground truth, outside greenroom). Modes:

* ``produce``: tell the router ``Order(n)`` for n = FIRST, ..., FIRST+BURST-1,
  each with ``idempotency_key=f"order-{n}"``, printing ``sent n`` once the
  tell returned (committed). The next run starts at the first order not
  confirmed, re-sending it: if it had been committed, the key drops it.
* ``drain``: send nothing; print ``drained`` once no message is left, and end.

Every handled delivery prints ``handled ORDER ENVELOPE_ID``: the driver
counts orders handled under two envelope ids (forwarded again after the
router was redelivered), the case that paid twice before causation ids.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Literal, cast

import anyio
import msgspec

import greenroom as gr
from greenroom.agent import Coordinator, conversation_pool
from greenroom.mailbox import SqliteMailboxes
from greenroom.tools import IRREVERSIBLE, Ledger, ToolAccess, ToolBox, ToolRegistry, tool

PAID_LOG: list[int] = []  # the fd of paid.log, in a child
BURST = 25  # orders a run sends (a bounded backlog: the kills land in its handling too)


def say(text: str) -> None:
    """One line on stdout in one write(2): a SIGKILL cannot split it."""
    os.write(1, f"{text}\n".encode())


class PayInput(msgspec.Struct, frozen=True, kw_only=True):
    order: int


class Paid(msgspec.Struct, frozen=True, kw_only=True):
    order: int


@tool(effect=IRREVERSIBLE)
async def pay(input: PayInput) -> Paid:
    """Charge the customer for ``order``: it cannot be taken back or repeated."""
    os.write(PAID_LOG[0], f"{input.order} {os.getpid()}\n".encode())
    return Paid(order=input.order)


class Order(gr.Message):
    order: int


class Payer(gr.Actor):
    @gr.handler
    async def order(self, msg: Order) -> None:
        await self.ctx.service(ToolBox).call("pay", {"order": msg.order})
        envelope = self.ctx.envelope
        assert envelope is not None
        say(f"handled {msg.order} {envelope.id}")


def _remaining(path: Path) -> int:
    with sqlite3.connect(path, timeout=30) as db:
        (count,) = db.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone()
    return int(count)


async def main(directory: Path, mode: str, synchronous: str, first: int) -> None:
    PAID_LOG[:] = [os.open(directory / "paid.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)]
    sync = cast(Literal["NORMAL", "FULL"], synchronous)
    shop = Coordinator(
        "shop",
        routes={Order: "payers"},
        pools=[conversation_pool("payers", gr.ChildSpec(actor=Payer), size=2, key="order")],
    )
    async with (
        SqliteMailboxes(directory / "mailbox.db", poll=0.05, lease=5.0, synchronous=sync) as boxes,
        gr.SqliteStore(directory / "store.db", synchronous=sync) as store,
    ):
        access = ToolAccess(
            ToolRegistry([pay]), grants={"Payer": ["pay"]}, interceptors=[Ledger(store)]
        )
        async with gr.Runtime(
            gr.RuntimeConfig(default_mailbox="durable"),
            mailboxes={"durable": boxes},
            dead_letters=boxes.dead_letters,
            extensions=[access],
        ) as rt:
            router = await shop.start(rt)
            say("ready")
            if mode == "produce":
                for n in range(first, first + BURST):
                    await router.tell(Order(order=n), idempotency_key=f"order-{n}")
                    say(f"sent {n}")
                await anyio.sleep_forever()  # handling the backlog, until killed
            # drain: every mailbox empty with no handler running, every ack committed;
            # again while rows remain (a mailbox loads its rows from disk after it starts)
            while True:
                await rt.drain(timeout=60)
                await boxes.flush()
                if await anyio.to_thread.run_sync(_remaining, directory / "mailbox.db") == 0:
                    break
    say("drained")


def _child(command: list[str]) -> None:
    directory, mode, synchronous, first = command
    try:
        anyio.run(main, Path(directory), mode, synchronous, int(first), backend="asyncio")
    except BaseException as error:  # reported to the driver, then exit
        say(f"error {error!r}")
        os._exit(1)
    os._exit(0)


def zygote() -> None:
    for raw in sys.stdin:
        command = raw.split()
        if not command:
            continue
        if command[0] != "run":
            say(f"error unknown command {raw!r}")
            continue
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            _child(command[1:])
        say(f"child {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exit {pid} {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    zygote()
