"""A durable two-stage pipeline, run as a subprocess by the crash tests.

    python -m tests.crash.pipeline DB OUT MODE [FIRST]

``serve()`` runs a supervisor (``mailbox_kind="durable"``) with two
children: ``worker`` takes ``Job``s and forwards a ``Done`` to ``auditor``.
MODE ``produce`` also runs a producer (on a memory mailbox: kinds mix) that
tells ``worker`` ``Job(n)`` for n = FIRST, FIRST+1, ... and prints ``sent
n`` once each tell returned (the message is committed); ``drain`` sends
nothing, prints ``drained`` once no message is left, and waits for SIGTERM.

How the handlers stay correct when they run twice (at-least-once), which
is the pattern to copy:

* ``worker`` records in the OUT database by ``self.ctx.envelope.id``, in one
  transaction with its effect: ``INSERT OR IGNORE`` of the id says whether
  this delivery is the first, and the effect (a row in ``effects``) is
  written only then. A redelivered message finds its id and does nothing.
* ``auditor`` receives a message sent by a handler, which is sent again
  (with a new envelope id) if that handler is redelivered: it records by
  the id of the original message, carried in the body (``Done.source``).

Every delivery is also logged (``deliveries``, with the process id), which
is what the test checks against; a real program would not need it.
"""

from __future__ import annotations

import os
import sqlite3
import sys

import anyio

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes

OUT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS deliveries (stage TEXT, envelope_id INTEGER, n INTEGER, "
    "attempt INTEGER, pid INTEGER, fresh INTEGER)",
    "CREATE TABLE IF NOT EXISTS seen (stage TEXT, key INTEGER, PRIMARY KEY (stage, key))",
    "CREATE TABLE IF NOT EXISTS effects (stage TEXT, key INTEGER, n INTEGER)",
)


class Job(gr.Message):
    n: int


class Done(gr.Message):
    source: int
    n: int


def open_out(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode = WAL")
    for statement in OUT_SCHEMA:
        db.execute(statement)
    return db


def record(db: sqlite3.Connection, stage: str, key: int, envelope: gr.Envelope, n: int) -> None:
    """The idempotent effect: done once per key, however often the message comes."""
    db.execute("BEGIN IMMEDIATE")
    fresh = db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)", (stage, key)).rowcount
    if fresh:
        db.execute("INSERT INTO effects VALUES (?, ?, ?)", (stage, key, n))
    db.execute(
        "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?)",
        (stage, envelope.id, n, envelope.attempt, os.getpid(), fresh),
    )
    db.execute("COMMIT")


class Worker(gr.Actor):
    def __init__(self, out: str) -> None:
        self.db = open_out(out)

    @gr.handler
    async def job(self, msg: Job) -> None:
        envelope = self.ctx.envelope
        assert envelope is not None
        auditor = self.ctx.runtime.ref("pipeline/auditor")
        await self.ctx.tell(auditor, Done(source=envelope.id, n=msg.n))
        record(self.db, "worker", envelope.id, envelope, msg.n)


class Auditor(gr.Actor):
    def __init__(self, out: str) -> None:
        self.db = open_out(out)

    @gr.handler
    async def done(self, msg: Done) -> None:
        envelope = self.ctx.envelope
        assert envelope is not None
        record(self.db, "auditor", msg.source, envelope, msg.n)


class Next(gr.Message):
    n: int


class Producer(gr.Actor):
    """Keeps sending: each ``tell`` returns once the job is committed, then says so."""

    def __init__(self, first: int) -> None:
        self.first = first

    async def on_start(self) -> None:
        await self.ctx.tell(self.ctx.ref, Next(n=self.first))

    @gr.handler
    async def next(self, msg: Next) -> None:
        await self.ctx.tell(self.ctx.runtime.ref("pipeline/worker"), Job(n=msg.n))
        print(f"sent {msg.n}", flush=True)
        await self.ctx.tell(self.ctx.ref, Next(n=msg.n + 1))


class Check(gr.Message):
    pass


class Drainer(gr.Actor):
    """Says ``drained`` once no message is left in the database."""

    def __init__(self, path: str, boxes: SqliteMailboxes) -> None:
        self.path = path
        self.boxes = boxes

    async def on_start(self) -> None:
        await self.ctx.tell(self.ctx.ref, Check())

    @gr.handler
    async def check(self, msg: Check) -> None:
        await self.boxes.flush()
        with sqlite3.connect(self.path) as db:
            (count,) = db.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone()
        if count == 0:
            print("drained", flush=True)
        else:
            self.ctx.send_after(0.05, Check())


async def main(path: str, out: str, mode: str, first: int) -> None:
    async with SqliteMailboxes(path, poll=0.2, lease=5.0) as boxes:
        memory = gr.MailboxConfig(kind="memory")
        extra = (
            gr.ChildSpec(actor=Producer, id="producer", args=(first,), mailbox=memory)
            if mode == "produce"
            else gr.ChildSpec(actor=Drainer, id="drainer", args=(path, boxes), mailbox=memory)
        )
        spec = gr.SupervisorSpec(
            id="pipeline",
            mailbox_kind="durable",
            children=(
                gr.ChildSpec(actor=Auditor, id="auditor", args=(out,)),
                gr.ChildSpec(actor=Worker, id="worker", args=(out,)),
                extra,
            ),
        )
        await gr.serve(
            spec,
            mailboxes={"durable": boxes},
            dead_letters=boxes.dead_letters,
            ready=lambda rt: print("ready", flush=True),
            drain_timeout=5.0,
        )
    print("stopped", flush=True)


if __name__ == "__main__":
    anyio.run(
        main,
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]) if len(sys.argv) > 4 else 0,
        backend="asyncio",
    )
