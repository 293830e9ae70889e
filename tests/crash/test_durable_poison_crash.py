"""Poison on disk never stops a durable process from starting, however often it is killed.

The pipeline of ``test_durable_crash`` runs in a subprocess; between runs
(each SIGKILLed mid-stream) the driver writes hostile rows straight into its
mailbox file for both durable actors: random bytes, msgpack strs that are
not UTF-8, nesting thousands deep, unhashable tags, text bodies, columns of
the wrong type or out of range, leases of no known holder. Every restart
must start and keep serving; the last run drains: every message sent is
handled, every hostile row is a dead letter with a typed error, none is
left behind.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest

from tests.crash.pipeline import Done, Job
from tests.crash.test_durable_crash import Child

ROUNDS = 5
PER_ROUND = 12
ACTORS = ("pipeline/worker", "pipeline/auditor")


def hostile_row(rng: random.Random) -> tuple[bytes | str, dict[str, object]]:
    """A body (bytes, or str for a TEXT body) and odd columns, from the usual bad inputs."""
    good = msgspec.msgpack.encode(rng.choice([Job(n=-1), Done(source=1, n=-1)]))
    kind = rng.choice(
        ["random", "flip", "invalid_utf8", "deep", "unhashable", "text", "column", "owner"]
    )
    if kind == "random":
        return rng.randbytes(rng.randrange(0, 64)), {}
    if kind == "flip":
        data = bytearray(good)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data), {"attempt": 0}  # a flip may decode: the column makes it poison
    if kind == "invalid_utf8":
        return b"\x82\xa4type\xa3Job\xa1n\xa1\xff", {}
    if kind == "deep":
        return b"\x91" * rng.randrange(1000, 5000) + b"\x01", {}
    if kind == "unhashable":
        return b"\x81\xa4type\x92\x01\x02", {}
    if kind == "text":
        return "not msgpack", {}
    if kind == "owner":
        return good, {"owner": rng.choice([12345, "nobody"]), "trace_id": "t"}
    column = rng.choice(["id", "trace_id", "attempt", "created_at", "sender", "deadline"])
    value = {"id": "x", "trace_id": 1.5, "attempt": 2**40, "created_at": "now"}.get(column)
    return good, {column: value if value is not None else b"\xff\xfe"}


def inject(db_path: Path, rng: random.Random, first_id: int) -> int:
    """Write ``PER_ROUND`` hostile rows for the pipeline's actors; how many went in."""
    written = 0
    with sqlite3.connect(db_path) as db:
        for index in range(PER_ROUND):
            body, columns = hostile_row(rng)
            values: dict[str, object] = {
                "actor": rng.choice(ACTORS),
                "id": first_id + index,
                "trace_id": 1,
                "attempt": 1,
                "created_at": time.time(),
                "body": body,
            }
            values.update(columns)
            names = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            db.execute(
                f"INSERT INTO greenroom_mailbox_messages ({names}) VALUES ({marks})",
                list(values.values()),
            )
            written += 1
    return written


@pytest.mark.slow
def test_a_process_with_poison_on_disk_restarts_and_dead_letters_it_all(tmp_path: Path) -> None:
    db, out = tmp_path / "pipeline.db", tmp_path / "out.db"
    rng = random.Random(1414)
    sent: set[int] = set()
    injected = 0
    first = 0
    for round_ in range(ROUNDS):
        child = Child(db, out, "produce", first)
        child.wait_for("ready")  # it starts, with the poison of the rounds before on disk
        for _ in range(rng.choice([3, 10, 30])):
            child.line()  # and keeps serving
        child.kill()
        assert child.process.returncode == -signal.SIGKILL
        sent.update(child.sent)
        first = max(sent, default=-1) + 1
        injected += inject(db, rng, 1_000 * (round_ + 1))
    last = Child(db, out, "drain")
    last.wait_for("drained")
    assert last.stop() == 0

    with sqlite3.connect(out) as conn:
        handled = {n for (n,) in conn.execute("SELECT n FROM effects WHERE stage = 'worker'")}
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone()[0]
        letters = conn.execute(
            "SELECT reason, error_type FROM greenroom_mailbox_dead_letters"
        ).fetchall()
    assert left == 0
    assert sent <= handled, f"lost: {sorted(sent - handled)[:20]}"
    assert len(letters) == injected
    assert {error_type for _, error_type in letters} <= {
        "greenroom.UndecodableMessage",
        "greenroom.UnknownMessage",
    }
    print(
        f"poison crash test: {ROUNDS} kills, {injected} hostile rows injected, "
        f"{len(letters)} dead-lettered, {len(sent)} sent, {len(sent - handled)} lost"
    )
