"""``dlq purge`` deletes for good, so it asks: on a terminal, or ``--yes``; ``--dry-run`` shows.

Without a terminal to ask on and without ``--yes`` it refuses (exit status
2) and deletes nothing. The terminal case runs the real command in a
subprocess whose stdin is a pseudo-terminal.
"""

from __future__ import annotations

import io
import os
import pty
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from greenroom.cli import main
from greenroom.mailbox._sqlite_schema import DEAD_LETTERS
from tests._hostile_rows import add_good_letter, make_mailbox_db

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def mail(tmp_path: Path) -> Path:
    path = make_mailbox_db(tmp_path / "mail.db")
    with sqlite3.connect(path) as db:
        for _ in range(3):
            add_good_letter(db)
    return path


def letters(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {DEAD_LETTERS}").fetchone()[0])


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_purge_without_a_terminal_or_yes_refuses_and_deletes_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, mail: Path
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # a pipe, not a terminal
    for args in (("--all",), ("1",), ("--all", "--actor", "billing")):
        status, out, err = cli(capsys, "dlq", "purge", "--db", str(mail), *args)
        assert (status, out) == (2, "")
        assert err.startswith("greenroom: error: purge deletes letters for good")
        assert "--yes" in err
    assert letters(mail) == 3


def test_purge_dry_run_lists_what_it_would_delete_and_deletes_nothing(
    capsys: pytest.CaptureFixture[str], mail: Path
) -> None:
    status, out, err = cli(capsys, "dlq", "purge", "--dry-run", "--db", str(mail), "--all")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:3]] == ["#1", "#2", "#3"]
    assert lines[3].startswith("would purge 3 letter(s)")
    status, out, _ = cli(capsys, "dlq", "purge", "--dry-run", "--db", str(mail), "2", "7")
    assert status == 1  # #7 does not exist
    assert "would purge 1 letter(s)" in out
    assert letters(mail) == 3
    assert cli(capsys, "dlq", "purge", "--yes", "--dry-run", "--db", str(mail), "1")[0] == 2


def _purge_on_a_terminal(mail: Path, answer: bytes) -> subprocess.CompletedProcess[str]:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "greenroom.cli", "dlq", "purge", "--db", str(mail), "--all"],
            cwd=ROOT,
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(follower)
        follower = -1
        os.write(leader, answer)  # kept by the terminal until the prompt reads it
        out, err = process.communicate(timeout=60)
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.slow
def test_purge_asks_on_a_terminal_and_deletes_only_on_yes(mail: Path) -> None:
    declined = _purge_on_a_terminal(mail, b"n\n")
    assert declined.returncode == 1, declined.stderr
    assert "purge 3 dead letter(s) from" in declined.stderr
    assert "[y/N]" in declined.stderr
    assert declined.stderr.rstrip().endswith("greenroom: error: nothing purged")
    assert letters(mail) == 3

    accepted = _purge_on_a_terminal(mail, b"y\n")
    assert (accepted.returncode, accepted.stdout) == (0, "purged 3 letter(s)\n"), accepted.stderr
    assert letters(mail) == 0
