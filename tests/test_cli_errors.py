"""The CLI answers every input with output or one typed error line, never a traceback.

The inputs the audit of issue #14 found tracebacks for, run through
``greenroom.cli.main`` in this process: ids past 63 bits, a lone surrogate
in ``--actor``, ``--since 0001-01-01``, letters with text that is not UTF-8,
deep bodies and odd ids and times (which ``dlq purge --all`` must still
remove), stored control characters, and read commands pointed at files that
are not their databases (which must not be changed).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from greenroom.cli import main
from greenroom.mailbox._sqlite_schema import DEAD_LETTERS
from greenroom.trace import Secret
from greenroom.trace._command import EXIT_HELP, guarded
from tests._hostile_rows import (
    add_good_letter,
    add_poison_letters,
    make_mailbox_db,
    make_trace_db,
)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("greenroom: error: "), err
    assert "Traceback" not in err
    return lines[0]


def raw_controls(text: str) -> bool:
    return any(c in text for c in "\x1b\x07\x9b\u202e\r") or any(
        0xD800 <= ord(c) <= 0xDFFF for c in text
    )


@pytest.fixture
def mail(tmp_path: Path) -> Path:
    return make_mailbox_db(tmp_path / "mail.db")


def test_ids_and_counts_past_63_bits_are_usage_errors(
    capsys: pytest.CaptureFixture[str], mail: Path
) -> None:
    for args in (
        ("dlq", "show", "--db", str(mail), str(2**63)),
        ("dlq", "redrive", "--db", str(mail), str(2**64)),
        ("dlq", "purge", "--yes", "--db", str(mail), "-1"),
        ("dlq", "list", "--db", str(mail), "--limit", str(10**30)),
        ("trace", "ls", "--db", str(mail), "--limit", str(2**63)),
    ):
        status, _, err = cli(capsys, *args)
        assert status == 2, args
        one_error_line(err)


def test_text_that_is_not_utf8_in_an_argument_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], mail: Path
) -> None:
    for args in (
        ("dlq", "list", "--db", str(mail), "--actor", "bill\udcffing"),
        ("dlq", "list", "--redis", "redis://127.0.0.1:1/0", "--prefix", "p\ud800"),
        ("trace", "show", "ab\udcff", "--db", str(mail)),
    ):
        status, _, err = cli(capsys, *args)
        assert status == 2, args
        line = one_error_line(err)
        assert "not valid text" in line
        assert not raw_controls(line)


def test_times_no_calendar_holds_are_usage_errors(
    capsys: pytest.CaptureFixture[str], mail: Path
) -> None:
    for when in ("0001-01-01", "nan", "1e400", "9" * 400 + "d", "yesterday", "\u0663"):
        status, _, err = cli(capsys, "dlq", "list", "--db", str(mail), "--since", when)
        assert status == 2, when
        assert "cannot read the time" in one_error_line(err)


def test_poison_letters_are_listed_shown_and_purged_with_all(
    capsys: pytest.CaptureFixture[str], mail: Path
) -> None:
    ids = add_poison_letters(mail)
    status, out, err = cli(capsys, "dlq", "list", "--db", str(mail))
    assert (status, err) == (0, "")
    assert out.endswith("6 letter(s)\n")
    assert "bill\\xffing" in out
    assert not raw_controls(out)
    status, out, _ = cli(capsys, "dlq", "list", "--db", str(mail), "--json")
    assert (status, len(out.splitlines())) == (0, 6)
    assert not raw_controls(out)
    for letter_id in ids:
        status, out, err = cli(capsys, "dlq", "show", "--db", str(mail), str(letter_id))
        assert (status, err) == (0, ""), letter_id
        assert not raw_controls(out)
    shown = cli(capsys, "dlq", "show", "--db", str(mail), str(ids[2]))[1]
    assert "unreadable: envelope_id: expected an integer, found bytes b'not a number'" in shown
    deep = cli(capsys, "dlq", "show", "--db", str(mail), str(ids[1]))[1]
    assert "body (raw bytes, hex: not msgpack): 9191" in deep

    status, out, _ = cli(capsys, "dlq", "redrive", "--db", str(mail), str(ids[2]))
    assert status == 0
    assert "cannot be redriven" in out
    status, out, err = cli(capsys, "dlq", "purge", "--yes", "--db", str(mail), "--all")
    assert (status, out, err) == (0, "purged 6 letter(s)\n", "")
    assert cli(capsys, "dlq", "list", "--db", str(mail))[1] == "no dead letters\n"


def test_stored_control_characters_are_printed_escaped(
    capsys: pytest.CaptureFixture[str], mail: Path
) -> None:
    ids = add_poison_letters(mail)
    out = cli(capsys, "dlq", "show", "--db", str(mail), str(ids[4]))[1]
    assert "error_message: \\x1b[2J\\x1b]0;owned\\x07\\u202e\\x9b" in out
    assert "traceback:\nTraceback\n  \\x1b[2J" in out  # a traceback keeps its lines
    listed = cli(capsys, "dlq", "list", "--db", str(mail))[1]
    assert "\\x1b[2J" in listed
    assert not raw_controls(listed)


def test_stored_secrets_are_printed_redacted(
    capsys: pytest.CaptureFixture[str], mail: Path
) -> None:
    key = Secret("sk-live-0123456789abcdef")
    with sqlite3.connect(mail) as db:
        letter_id = add_good_letter(db)
        db.execute(
            f"UPDATE {DEAD_LETTERS} SET error_message = ?, traceback = ? WHERE letter_id = ?",
            (f"refused {key.reveal()}", "Authorization: Bearer abcdefgh12345678\n", letter_id),
        )
    for args in (("show", str(letter_id)), ("show", str(letter_id), "--json"), ("list",)):
        out = cli(capsys, "dlq", *args, "--db", str(mail))[1]
        assert key.reveal() not in out
        assert "abcdefgh12345678" not in out
        assert "[redacted]" in out


def test_read_commands_refuse_a_file_that_is_not_their_database_and_leave_it_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mail: Path
) -> None:
    traces = make_trace_db(tmp_path / "traces.db")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a database at all" * 100)
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    files = [traces, junk, foreign, empty, mail]
    before = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    for path, expected in (
        (mail, "not a greenroom trace database"),
        (junk, "not an SQLite file"),
        (foreign, "not a greenroom trace database"),
        (empty, "not a greenroom trace database"),
    ):
        for args in (
            ("trace", "ls", "--db", str(path)),
            ("trace", "show", "abc", "--db", str(path)),
            ("eval", "--db", str(path), "--decider", "x:y"),
        ):
            status, _, err = cli(capsys, *args)
            assert status == 2, (args, err)
            assert expected in one_error_line(err)
    for path, expected in (
        (traces, "not a greenroom mailbox database"),
        (junk, "not an SQLite file"),
        (foreign, "not a greenroom mailbox database"),
        (empty, "not a greenroom mailbox database"),
    ):
        for action in ("list", "show 1", "purge --dry-run --all", "purge --yes --all"):
            status, _, err = cli(capsys, "dlq", *action.split(), "--db", str(path))
            assert status == 2, (action, path, err)
            assert expected in one_error_line(err)
    assert {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == before
    with sqlite3.connect(foreign) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("users",)]


def test_a_missing_file_is_an_error_not_a_new_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.db"
    for args in (
        ("trace", "ls", "--db", str(missing)),
        ("dlq", "list", "--db", str(missing)),
        ("eval", "--db", str(missing), "--decider", "x:y"),
        ("trace", "ls", "--db", str(tmp_path)),  # a folder
    ):
        status, _, err = cli(capsys, *args)
        assert status == 2, args
        assert "does not exist" in one_error_line(err) or "is not a file" in err
    assert not missing.exists()


def test_an_unexpected_exception_is_one_internal_error_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GREENROOM_DEBUG", raising=False)
    assert guarded(lambda: 1 // 0) == 4
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("greenroom: error: internal error: ZeroDivisionError")
    assert "GREENROOM_DEBUG=1" in line

    monkeypatch.setenv("GREENROOM_DEBUG", "1")
    assert guarded(lambda: 1 // 0) == 4
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1].startswith("greenroom: error: internal error")


def test_help_documents_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = cli(capsys, "--help")
    assert status == 0
    assert EXIT_HELP in out
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130 "):
        assert f"\n  {code}" in out
    status, out, _ = cli(capsys, "dlq", "purge", "--help")
    assert (status, "--dry-run" in out, "--yes" in out, "exit status:" in out) == (0, 1, 1, 1)
    status, _, err = cli(capsys, "dlq", "frobnicate")
    assert status == 2
    one_error_line(err)
