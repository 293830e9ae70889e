"""A long-lived agent on a durable mailbox: kill -9 it, restart it, and lose nothing.

Run the demo with ``uv run examples/durable_agent.py``: it starts the agent
as a child process, SIGKILLs it twice while notes are being sent, restarts
it each time on the same database, and then checks that every note sent
was written exactly once. Run the agent alone (Ctrl-C stops it gracefully)
with ``uv run examples/durable_agent.py agent DIR [FIRST]``.

What makes it work:

* the notebook's mailbox is durable (``mailbox_kind="durable"``): a ``tell``
  returns only once the note is committed, and a note leaves the mailbox
  only when its handler returned; a killed process's unfinished notes are
  delivered again, with ``attempt`` incremented, when it restarts;
* the handler is idempotent: it writes the note together with its
  envelope id (``INSERT OR IGNORE``), so a note delivered twice is written
  once. This is the pattern to copy for any effect of your own;
* the sender cannot know whether a note it sent just before the kill was
  committed (its "sent" line may not have been printed), so after a restart
  it sends that note again, with the same ``idempotency_key``: the envelope
  id comes from the key, and the mailbox drops the re-send of a note it
  already has (or handled within its ``dedupe_window``).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import anyio

import greenroom as gr
from greenroom.mailbox import SqliteMailboxes

TOTAL = 120


class Note(gr.Message):
    n: int


class Notebook(gr.Actor):
    """Writes each note once, however often it is delivered."""

    def __init__(self, path: str) -> None:
        self.path = path

    async def on_start(self) -> None:
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS notes (envelope_id INTEGER PRIMARY KEY, n)")

    async def on_stop(self) -> None:
        self.db.close()

    @gr.handler
    async def note(self, msg: Note) -> None:
        envelope = self.ctx.envelope
        assert envelope is not None
        await anyio.sleep(0.002)  # the work: a kill can land here, before the ack
        written = self.db.execute(
            "INSERT OR IGNORE INTO notes VALUES (?, ?)", (envelope.id, msg.n)
        ).rowcount
        state = "written" if written else "already written"
        print(f"note {msg.n} attempt {envelope.attempt}: {state}", flush=True)


class Feeder(gr.Actor):
    """Sends notes FIRST..TOTAL to the notebook, saying which ones are committed."""

    def __init__(self, first: int) -> None:
        self.first = first

    async def on_start(self) -> None:
        self.ctx.send_after(0.0, Note(n=self.first))

    @gr.handler
    async def next(self, msg: Note) -> None:
        notebook = self.ctx.runtime.ref("agent/notebook")
        await notebook.tell(msg, idempotency_key=f"note-{msg.n}")  # returns once committed
        print(f"sent {msg.n}", flush=True)
        if msg.n < TOTAL:
            await self.ctx.ref.tell(Note(n=msg.n + 1))


async def agent(directory: Path, first: int) -> None:
    spec = gr.SupervisorSpec(
        id="agent",
        mailbox_kind="durable",
        children=(
            gr.ChildSpec(actor=Notebook, id="notebook", args=(str(directory / "notes.db"),)),
            gr.ChildSpec(
                actor=Feeder, id="feeder", args=(first,), mailbox=gr.MailboxConfig(kind="memory")
            ),
        ),
    )
    async with SqliteMailboxes(directory / "mail.db") as boxes:
        await gr.serve(
            spec,
            mailboxes={"durable": boxes},
            dead_letters=boxes.dead_letters,
            ready=lambda rt: print("ready", flush=True),
        )


def demo() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        sent = redelivered = already = 0
        for kill_after in (40, 80, None):
            print(f"-- starting the agent; it sends notes from {sent + 1}")
            child = subprocess.Popen(
                [sys.executable, __file__, "agent", tmp, str(sent + 1)],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert child.stdout is not None
            for line in child.stdout:
                if line.startswith("sent "):
                    sent = int(line.split()[1])
                elif line.startswith("note ") and "attempt 1:" not in line:
                    redelivered += 1
                    already += "already" in line
                if kill_after is not None and sent >= kill_after:
                    child.send_signal(signal.SIGKILL)
                    break
                if kill_after is None and sent == TOTAL and len(count_notes(directory)) == TOTAL:
                    child.send_signal(signal.SIGTERM)  # done: stop it gracefully
            code = child.wait(timeout=60)
            how = "killed with SIGKILL" if code == -signal.SIGKILL else f"exited with {code}"
            print(f"-- agent {how} after note {sent} was sent")
        notes = count_notes(directory)
        print(f"notes delivered again after a kill: {redelivered} ({already} already written)")
        print(f"sent {sent} notes; the notebook holds {len(notes)} distinct notes")
        print(f"every note written exactly once: {sorted(notes) == list(range(1, TOTAL + 1))}")


def count_notes(directory: Path) -> list[int]:
    with sqlite3.connect(directory / "notes.db") as db:
        rows = db.execute("SELECT n FROM notes").fetchall()
    return [n for (n,) in rows]


if __name__ == "__main__":
    if sys.argv[1:2] == ["agent"]:
        first = int(sys.argv[3]) if len(sys.argv) > 3 else 1
        gr.run(agent, Path(sys.argv[2]), first)
    else:
        demo()
