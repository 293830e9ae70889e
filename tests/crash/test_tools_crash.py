"""Tool side effects across SIGKILL: no blind re-runs by the ledger; parked calls survive.

The program (``tests/crash/tools_app.py``) runs on a durable mailbox and a
durable store. The driver kills it (SIGKILL) at an exact point, announced
by a line on its stdout while it blocks there, restarts it on the same
databases, and counts the runs each tool recorded outside greenroom.
Synchronisation is by stdout lines read with ``select`` timeouts, never by
sleeping.
"""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from greenroom.tools import Ticket

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ("pure_op", "idem_op", "comp_op", "irrev_op")


class App:
    """One run of the program, read line by line."""

    def __init__(self, directory: Path, mode: str, *args: str, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash.tools_app", str(directory), mode, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        self.seen: list[str] = []
        self.buffer = b""

    def line(self, timeout: float = 20.0) -> str:
        """The next line of output; fails after ``timeout`` seconds or at its end.

        Reads the pipe's bytes itself: a buffered ``readline`` may take
        several lines at once, and ``select`` would then wait for more.
        """
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.process.kill()
                pytest.fail(f"no output within {timeout} s; saw {self.seen}: {self.stderr()}")
            ready, _, _ = select.select([stdout], [], [], left)
            if ready:
                chunk = os.read(stdout.fileno(), 4096)
                if not chunk:
                    pytest.fail(f"the program ended; saw {self.seen}: {self.stderr()}")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        text = line.decode().strip()
        self.seen.append(text)
        return text

    def collect(self, prefixes: tuple[str, ...], count: int) -> list[str]:
        """The next ``count`` lines starting with one of ``prefixes`` (others are skipped)."""
        found: list[str] = []
        while len(found) < count:
            text = self.line()
            if text.startswith(prefixes):
                found.append(text)
        return found

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=20) == -signal.SIGKILL
        self.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        while self.line() != "stopped":
            pass
        assert self.process.wait(timeout=20) == 0, self.stderr()
        self.close()

    def stderr(self) -> str:
        assert self.process.stderr is not None
        self.process.wait(timeout=20)
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> None:
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def _runs(directory: Path) -> dict[str, list[int]]:
    """The pids of every run of each tool, from the tools' own table."""
    runs: dict[str, list[int]] = {}
    with sqlite3.connect(directory / "out.db") as db:
        for tool, pid in db.execute("SELECT tool, pid FROM runs ORDER BY rowid"):
            runs.setdefault(tool, []).append(pid)
    return runs


def _messages_left(directory: Path) -> int:
    with sqlite3.connect(directory / "mailbox.db") as db:
        (left,) = db.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone()
    return int(left)


def _dead_letters(directory: Path) -> dict[str, str]:
    """Per actor, the error type and message of its dead letter."""
    with sqlite3.connect(directory / "mailbox.db") as db:
        rows = db.execute(
            "SELECT actor, error_type, error_message, attempts FROM greenroom_mailbox_dead_letters"
        ).fetchall()
    assert all(attempts == 2 for *_, attempts in rows)  # dead-lettered on the redelivery itself
    return {actor: f"{kind}: {message}" for actor, kind, message, _ in rows}


# Per effect class and kill point: (runs in all, how its redelivery ended).
EXPECTED = {
    "intent": {
        "pure_op": (2, "handled pure_op 2"),  # pure: simply runs again
        "idem_op": (2, "handled idem_op 2"),  # idempotent: runs again with the same key
        "comp_op": (1, "dead w-comp_op StepInterrupted"),  # fails closed, names its undo
        "irrev_op": (1, "dead w-irrev_op StepInterrupted"),  # never twice
    },
    "receipt": {
        "pure_op": (2, "handled pure_op 2"),  # pure keeps no receipt: runs again
        "idem_op": (1, "handled idem_op 1"),  # the recorded output, run 1's count
        "comp_op": (1, "handled comp_op 1"),
        "irrev_op": (1, "handled irrev_op 1"),
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("point", ["intent", "receipt"])
def test_a_redelivered_step_reruns_only_what_its_effect_class_allows(
    tmp_path: Path, point: str
) -> None:
    first = App(tmp_path, "ledger", GREENROOM_SEND="1", GREENROOM_KILL_AT=point)
    blocked = first.collect((f"{point} ",), len(TOOLS))  # every worker is at the point
    assert sorted(b.split()[1] for b in blocked) == sorted(TOOLS)
    first.kill()
    killed = first.process.pid
    assert {tool: len(pids) for tool, pids in _runs(tmp_path).items()} == dict.fromkeys(TOOLS, 1)

    second = App(tmp_path, "ledger", GREENROOM_KILL_AT="")
    outcomes = second.collect(("handled ", "dead "), len(TOOLS))
    second.stop()

    expected = EXPECTED[point]
    assert sorted(outcomes) == sorted(outcome for _, outcome in expected.values())
    runs = _runs(tmp_path)
    assert {tool: len(pids) for tool, pids in runs.items()} == {
        tool: count for tool, (count, _) in expected.items()
    }
    assert runs["irrev_op"] == [killed]  # the irreversible tool ran once, before the kill
    assert _messages_left(tmp_path) == 0  # every message was acked or dead-lettered
    letters = _dead_letters(tmp_path)
    if point == "intent":
        assert set(letters) == {"w-comp_op", "w-irrev_op"}
        for actor, message in letters.items():
            tool = actor.removeprefix("w-")
            assert message.startswith("greenroom.StepInterrupted")
            assert f"tool '{tool}'" in message
            assert "step 0" in message
            assert actor in message
        assert "'undo_op'" in letters["w-comp_op"]
    else:
        assert letters == {}


@pytest.mark.slow
def test_a_parked_call_survives_a_sigkill_and_runs_once_when_approved_after(
    tmp_path: Path,
) -> None:
    first = App(tmp_path, "park")
    [parked] = first.collect(("parked ",), 1)
    ticket = parked.split()[1]
    first.kill()
    assert _runs(tmp_path) == {}  # parked: the tool has not run

    second = App(tmp_path, "approve", ticket)
    settled = second.collect(("settled ",), 2)
    second.stop()
    assert settled == ["settled done", "settled closed"]  # the second Approve ran nothing
    assert _runs(tmp_path) == {"pay": [second.process.pid]}  # once, after the restart
    with sqlite3.connect(tmp_path / "store.db") as db:
        [(value,)] = db.execute(
            "SELECT value FROM greenroom_store_records WHERE scope = ? AND key = ?",
            ("greenroom.approvals", ticket),
        ).fetchall()
    stored = msgspec.msgpack.decode(value, type=Ticket)
    assert (stored.state, stored.by, stored.tool) == ("done", "driver", "pay")
