"""A durable pipeline survives being SIGKILLed at random points, again and again.

The pipeline (``tests/crash/pipeline.py``) runs under ``serve()`` in a
subprocess while its producer keeps sending; the driver kills it at a random
point 50 times in a row (during recovery, mid-stream), restarts it on the
same database each time, then lets a last run drain everything and stop on
SIGTERM. Synchronisation is by the child's stdout lines only (read with
``select`` timeouts), never by sleeping.
"""

from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KILLS = 50


class Child:
    """One run of the pipeline, read line by line."""

    def __init__(self, db: Path, out: Path, mode: str, first: int = 0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.crash.pipeline", str(db), str(out), mode, str(first)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self.sent: list[int] = []
        self._pending = b""  # read from the pipe, not yet returned as lines

    def line(self, timeout: float = 30.0) -> str:
        """The next line of output (``""`` at its end); fails after ``timeout`` seconds."""
        stdout = self.process.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        # Lines are split here, from raw reads: a buffered readline could keep a
        # line in its buffer while select() waits on the empty pipe.
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                self.process.kill()
                pytest.fail(f"no output from the pipeline within {timeout} s")
            ready, _, _ = select.select([stdout], [], [], left)
            if ready:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:  # the end of its output
                    text, self._pending = self._pending.decode(), b""
                    return text.strip()
                self._pending += chunk
        raw, self._pending = self._pending.split(b"\n", 1)
        text = raw.decode()
        if text.startswith("sent "):
            self.sent.append(int(text.split()[1]))
        return text.strip()

    def wait_for(self, wanted: str) -> None:
        while (text := self.line()) != wanted:
            assert text, f"the pipeline ended before {wanted!r}: {self.stderr()}"

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)  # reaped: its pid is gone for the next run
        while self.line():  # what it printed before dying counts as sent
            pass
        self.close()

    def stop(self) -> int:
        """SIGTERM, wait for it to say it stopped, and its exit status."""
        self.process.send_signal(signal.SIGTERM)
        self.wait_for("stopped")
        status = self.process.wait(timeout=30)
        assert status == 0, self.stderr()
        self.close()
        return status

    def stderr(self) -> str:
        assert self.process.stderr is not None
        self.process.wait(timeout=30)
        return bytes(self.process.stderr.read()).decode()

    def close(self) -> None:
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.slow
def test_a_durable_pipeline_killed_fifty_times_loses_nothing(tmp_path: Path) -> None:
    db, out = tmp_path / "pipeline.db", tmp_path / "out.db"
    seed = int(os.environ.get("GREENROOM_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    sent: set[int] = set()
    killed: set[int] = set()
    first = 0
    for _ in range(KILLS):
        child = Child(db, out, "produce", first)
        if rng.random() < 0.1:
            child.line()  # killed while still starting up (often before "ready")
        else:
            child.wait_for("ready")
            for _ in range(rng.choice([0, 1, 3, 10, 30, 60])):
                child.line()
        killed.add(child.process.pid)
        child.kill()
        assert child.process.returncode == -signal.SIGKILL
        sent.update(child.sent)
        first = max(sent, default=-1) + 1
    last = Child(db, out, "drain")
    last.wait_for("drained")
    assert last.stop() == 0

    with sqlite3.connect(out) as conn:
        deliveries = conn.execute(
            "SELECT stage, envelope_id, n, attempt, pid, fresh FROM deliveries ORDER BY rowid"
        ).fetchall()
        effects = conn.execute("SELECT stage, key, n FROM effects").fetchall()
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone()[0]
        letters = conn.execute("SELECT count(*) FROM greenroom_mailbox_dead_letters").fetchone()[0]

    note = f"(seed {seed}: rerun with GREENROOM_CRASH_SEED={seed})"
    assert len(sent) > KILLS, note
    assert (left, letters) == (0, 0), note

    # Every message sent was handled at least once: none was lost.
    handled = {n for stage, _, n, _, _, _ in deliveries if stage == "worker"}
    assert sent <= handled, f"lost: {sorted(sent - handled)[:20]} {note}"
    worker_ids = {e for stage, e, _, _, _, _ in deliveries if stage == "worker"}
    audited = {key for stage, key, _ in effects if stage == "auditor"}
    assert audited == worker_ids, note  # each forwarded message reached the second stage

    # Handled twice only when the first handling was in a process killed before
    # its ack was committed; the redelivery counts one more attempt.
    runs: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for stage, envelope_id, _, attempt, pid, _ in deliveries:
        runs[stage, envelope_id].append((attempt, pid))
    twice = {key: seen for key, seen in runs.items() if len(seen) > 1}
    for key, seen in twice.items():
        assert all(pid in killed for _, pid in seen[:-1]), (key, seen, note)
        attempts = [attempt for attempt, _ in seen]
        assert attempts == sorted(set(attempts)), (key, seen, note)
    assert any(attempt > 1 for _, _, _, attempt, _, _ in deliveries), note
    print(
        f"crash test: {len(sent)} sent, {len(deliveries)} deliveries, {len(twice)} handled "
        f"twice or more, {sum(a > 1 for *_, a, _, _ in deliveries)} redeliveries {note}"
    )

    # The idempotent handlers: one effect per envelope id (worker) and per
    # original message (auditor), however many deliveries there were.
    for stage in ("worker", "auditor"):
        keys = [key for s, key, _ in effects if s == stage]
        assert len(keys) == len(set(keys)), (stage, note)
    assert len([1 for s, *_ in effects if s == "worker"]) == len(worker_ids)
    fresh = sum(f for s, _, _, _, _, f in deliveries if s == "worker")
    assert fresh == len(worker_ids), note


@pytest.mark.slow
def test_a_served_process_restarted_on_the_same_database_resumes_where_it_stopped(
    tmp_path: Path,
) -> None:
    db, out = tmp_path / "pipeline.db", tmp_path / "out.db"
    first = Child(db, out, "produce")
    first.wait_for("ready")
    for _ in range(20):
        first.line()
    first.kill()
    assert first.sent
    second = Child(db, out, "drain")
    second.wait_for("drained")  # the tree is rebuilt from its spec and handles the backlog
    assert second.stop() == 0
    with sqlite3.connect(out) as conn:
        handled = {n for (n,) in conn.execute("SELECT n FROM effects WHERE stage = 'worker'")}
    assert set(first.sent) <= handled
