"""``greenroom dlq`` end to end, through the installed console script in a subprocess."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from greenroom.cli import parse_when

ROOT = Path(__file__).resolve().parents[1]
GREENROOM = Path(sys.executable).parent / "greenroom"

APP = textwrap.dedent(
    """
    import sys
    import anyio
    import greenroom as gr
    from greenroom.mailbox import SqliteMailboxes

    class Charge(gr.Message):
        order: str
        cents: int

    class Billing(gr.Actor):
        def __init__(self, fixed: bool, handled: anyio.Event) -> None:
            self.fixed = fixed
            self.handled = handled

        @gr.handler
        async def charge(self, msg: Charge) -> None:
            if not self.fixed:
                raise ValueError(f"no price list for {msg.order}")
            envelope = self.ctx.envelope
            print(f"handled {envelope.id:016x} {envelope.trace_id:016x} {envelope.attempt}",
                  flush=True)
            self.handled.set()

    async def main(path: str, mode: str) -> None:
        handled = anyio.Event()
        async with (
            SqliteMailboxes(path) as boxes,
            gr.Runtime(mailboxes={"durable": boxes}, dead_letters=boxes.dead_letters) as rt,
        ):
            ref = await rt.spawn(
                Billing,
                name="billing",
                args=(mode == "fixed", handled),
                mailbox=gr.MailboxConfig(kind="durable"),
                retry=gr.RetryPolicy(max_attempts=2, backoff=gr.Backoff(initial=0.0, jitter=0.0)),
            )
            if mode == "broken":
                try:
                    await ref.ask(Charge(order="A-1", cents=1250), timeout=10)
                except gr.HandlerError as error:
                    print("failed:", error, flush=True)
            else:
                with anyio.fail_after(10):
                    await handled.wait()

    anyio.run(main, sys.argv[1], sys.argv[2])
    """
)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(GREENROOM), *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def app(path: Path, mode: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", APP, str(path), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.slow
def test_a_dead_letter_is_listed_shown_and_redriven_to_the_fixed_handler(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    assert "failed: billing failed to handle Charge after 2 attempt(s)" in app(db, "broken")

    listed = run("dlq", "list", "--db", str(db), "--json").stdout.splitlines()
    assert len(listed) == 1
    letter = json.loads(listed[0])
    assert (letter["actor"], letter["reason"], letter["attempts"]) == (
        "billing",
        "handler_failed",
        2,
    )
    assert (letter["error_type"], letter["error_message"]) == (
        "ValueError",
        "no price list for A-1",
    )
    assert letter["body"] == {"type": "Charge", "order": "A-1", "cents": 1250}

    table = run("dlq", "list", "--db", str(db), "--actor", "billing", "--since", "1h").stdout
    assert f"#{letter['id']}" in table
    assert "ValueError: no price list for A-1" in table
    assert run("dlq", "list", "--db", str(db), "--actor", "nobody").stdout == "no dead letters\n"
    assert (
        run("dlq", "list", "--db", str(db), "--error-type", "KeyError").stdout
        == "no dead letters\n"
    )

    shown = run("dlq", "show", "--db", str(db), str(letter["id"])).stdout
    assert "Traceback" in shown
    assert "no price list for A-1" in shown
    assert letter["envelope_id"] in shown
    assert letter["trace_id"] in shown

    redriven = run("dlq", "redrive", "--db", str(db), str(letter["id"])).stdout
    assert "redriven 1 letter(s)" in redriven
    assert run("dlq", "list", "--db", str(db)).stdout == "no dead letters\n"

    # The fixed program, on the same database, handles the redriven message,
    # with its envelope id and trace id kept and its attempts reset.
    handled = app(db, "fixed").split()
    assert handled == ["handled", letter["envelope_id"], letter["trace_id"], "1"]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM greenroom_mailbox_messages").fetchone() == (0,)


@pytest.mark.slow
def test_bad_input_gets_a_clear_message_and_exit_status(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    app(db, "broken")
    [line] = run("dlq", "list", "--db", str(db), "--json").stdout.splitlines()
    number = str(json.loads(line)["id"])

    missing = run("dlq", "list", "--db", str(tmp_path / "nope.db"), check=False)
    assert missing.returncode == 2
    assert "no mailbox database" in missing.stderr
    assert "does not exist" in missing.stderr

    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    other = run("dlq", "list", "--db", str(foreign), check=False)
    assert (other.returncode, "not a greenroom mailbox database" in other.stderr) == (2, True)

    unknown = run("dlq", "show", "--db", str(db), "9999", check=False)
    assert (unknown.returncode, unknown.stderr.strip()) == (
        1,
        f"greenroom: error: no dead letter #9999 in {db}",
    )
    partly = run("dlq", "redrive", "--db", str(db), "9999", number, check=False)
    assert partly.returncode == 1
    assert "redriven 1 letter(s)" in partly.stdout
    assert "#9999" in partly.stderr

    for bad in (
        ("dlq", "redrive", "--db", str(db)),
        ("dlq", "purge", "--db", str(db), "1", "--all"),
        ("dlq", "list", "--db", str(db), "--since", "yesterday"),
    ):
        done = run(*bad, check=False)
        assert done.returncode == 2, bad
        assert done.stderr.startswith("greenroom: "), done.stderr
    assert run("dlq", "frobnicate", "--db", str(db), check=False).returncode == 2


@pytest.mark.slow
def test_purge_deletes_the_letters_that_match(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    app(db, "broken")
    app(db, "broken")
    assert len(run("dlq", "list", "--db", str(db), "--json").stdout.splitlines()) == 2
    assert run("dlq", "purge", "--yes", "--db", str(db), "--all", "--actor", "other").stdout == (
        "purged 0 letter(s)\n"
    )
    assert run("dlq", "purge", "--yes", "--db", str(db), "--all", "--actor", "billing").stdout == (
        "purged 2 letter(s)\n"
    )
    assert run("dlq", "list", "--db", str(db)).stdout == "no dead letters\n"


def test_times_are_read_as_epoch_seconds_iso_or_an_age() -> None:
    assert parse_when("1700000000.5") == 1700000000.5
    assert parse_when("90s", now=1000.0) == 910.0
    assert parse_when("2h", now=10_000.0) == 2800.0
    assert parse_when("2024-01-01T00:00:00+00:00") == 1704067200.0
