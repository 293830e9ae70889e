"""Fuzz: any command line gets output or one typed error line, never a traceback.

Hypothesis builds argv from the real subcommands and options mixed with
hostile values (huge and negative ints, lone surrogates, odd dates, control
characters, empty strings) and sources that are missing, not databases,
foreign databases, or databases and a Redis stream holding hostile rows
(:mod:`tests._hostile_rows`). Each runs through ``greenroom.cli.main`` in
this process, with stdout and stderr captured. Every outcome must be an exit
status of the documented set but 4 (an internal error is a bug), no
traceback, every stderr line ``greenroom: error: ...``, and no raw control
character on stdout. A handful run as real processes too, to prove the exit
path of the console script and of ``python -m greenroom.cli``.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from greenroom.cli import main
from greenroom.mailbox._sqlite_schema import DEAD_LETTERS, LETTER_COLUMNS
from greenroom.trace._schema import COLUMNS
from tests._fuzz import FUZZ_SETTINGS, record
from tests._hostile_rows import (
    CONTROLS,
    TRACE_ID,
    add_good_letter,
    add_good_span,
    add_poison_letters,
    insert_row,
    letter_row,
    make_mailbox_db,
    make_trace_db,
    scratch_dir,
    span_row,
)
from tests._redis_server import free_port, redis_prefix, redis_url

ROOT = Path(__file__).resolve().parents[1]
GREENROOM = Path(sys.executable).parent / "greenroom"
# What must never reach a terminal raw: C0 controls but newline and tab, DEL, C1,
# bidi controls, line separators, lone surrogates.
RAW = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
ALLOWED = {0, 1, 2, 3}


class World:
    """The files and sources the fuzzed commands point at, made once per module."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.mail = make_mailbox_db(folder / "mail.db")
        add_poison_letters(self.mail)
        with sqlite3.connect(self.mail) as db:
            add_good_letter(db)
        self.traces = make_trace_db(folder / "traces.db")
        with sqlite3.connect(self.traces) as db:
            add_good_span(db, span_id=1)
        self.junk = folder / "junk.bin"
        self.junk.write_bytes(os.urandom(4096))
        self.empty = folder / "empty.db"
        self.empty.write_bytes(b"")
        self.foreign = folder / "foreign.db"
        with sqlite3.connect(self.foreign) as db:
            db.execute("CREATE TABLE users (name TEXT)")
        self.missing = folder / "missing.db"
        self.redis, self.prefix = redis_url(), redis_prefix()
        client = redis.Redis.from_url(self.redis)
        try:
            for fields in (
                {b"actor": CONTROLS.encode(), b"h": b"\xc1", b"b": b"\x91" * 3000 + b"\x01"},
                {b"actor": b"bill\xffing", b"at": b"nan", b"attempts": b"9" * 5000},
                {b"x": b""},
            ):
                client.xadd(f"{self.prefix}dead", fields)  # type: ignore[arg-type]
        finally:
            client.close()

    def fresh(self, letter: list[Any] | None, span: list[Any] | None) -> tuple[Path, Path]:
        """Copies of the databases for one case (purges may empty them), plus hostile rows."""
        mail, traces = self.folder / "case-mail.db", self.folder / "case-traces.db"
        shutil.copyfile(self.mail, mail)
        shutil.copyfile(self.traces, traces)
        if letter is not None:
            with sqlite3.connect(mail) as db:
                insert_row(db, DEAD_LETTERS, LETTER_COLUMNS, letter)
        if span is not None:
            with sqlite3.connect(traces) as db:
                insert_row(db, "greenroom_spans", COLUMNS, span)
        return mail, traces


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with scratch_dir() as folder:
        yield World(folder)


HOSTILE = st.one_of(
    st.sampled_from(
        [
            str(2**63),
            str(2**64),
            str(-(2**63) - 1),
            "-1",
            "0",
            "1",
            "3",
            "1e400",
            "nan",
            "-inf",
            "",
            "-",
            "--",
            "0001-01-01",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:00:00+14:00",
            "99999999999999d",
            "1h",
            "a\udcffb",
            "\ud800",
            CONTROLS,
            "\x00",
            "1-0",
            f"{2**64}-0",
            "1-0\n",
            "\u0661",
            "abc",
            f"{TRACE_ID:016x}",
            "1234",
            "x:y",
            "os.path:nope",
            ":",
            "json:loads",
            "..relative:x",
            "greenroom.trace:Secret",
        ]
    ),
    st.text(max_size=12),
    st.integers().map(str),
)


SENSIBLE = {
    "--actor": ["billing", "nobody"],
    "--reason": ["handler_failed"],
    "--error-type": ["ValueError"],
    "--since": ["1h", "2020-01-01", "0"],
    "--until": ["2099-01-01T00:00+00:00", "1700000001"],
    "--limit": ["0", "2", "50"],
    "id": [str(n) for n in range(1, 9)] + ["0-0", "1-0"],
    "--trace": [f"{TRACE_ID:016x}"[:4]],
    "--timeout": ["5"],
    "--decider": ["json:loads", "x:y"],
}


def value(option: str) -> st.SearchStrategy[str]:
    """Mostly a value the option could take, else a hostile one."""
    return st.one_of(st.sampled_from(SENSIBLE.get(option, ["1"])), HOSTILE)


@st.composite
def argv(draw: st.DrawFn, world: World, mail: Path, traces: Path) -> list[str]:
    shape = draw(st.sampled_from(["dlq", "dlq", "dlq", "redis", "trace", "trace", "eval", "junk"]))
    files = [mail, traces, world.junk, world.empty, world.foreign, world.missing, world.folder]
    right = mail if shape == "dlq" else traces
    db = str(draw(st.one_of(st.just(right), st.just(right), st.sampled_from(files))))
    if shape == "junk":
        words = ["dlq", "trace", "eval", "list", "show", "ls", "--db", db, "--all", "--json"]
        return draw(st.lists(st.one_of(st.sampled_from(words), HOSTILE), max_size=8))
    options: list[str] = []
    if shape in ("dlq", "redis"):
        action = draw(st.sampled_from(["list", "show", "redrive", "purge"]))
        if shape == "redis":
            url = draw(
                st.sampled_from(
                    [world.redis, world.redis, f"redis://127.0.0.1:{free_port()}/0", "http://x"]
                )
            )
            source = ["--redis", url, "--prefix", world.prefix]
            if action == "redrive":
                action = "show"  # redrives would empty the shared stream
        else:
            source = ["--db", db]
        args = ["dlq", action, *source]
        if action == "show":
            args.append(draw(value("id")))
        elif action in ("redrive", "purge"):
            if draw(st.booleans()):
                args.append("--all")
            else:
                args += draw(st.lists(value("id"), min_size=0, max_size=3))
            if action == "purge":
                answers = ["--dry-run"] if shape == "redis" else ["--dry-run", "--yes"]
                args += draw(st.lists(st.sampled_from([*answers, ""]), max_size=2))
        filters = ["--actor", "--reason", "--error-type", "--since", "--until"]
        filters += ["--limit"] if action == "list" else []
        for option in draw(
            st.lists(st.sampled_from(filters), max_size=0 if action == "show" else 3)
        ):
            options += [option, draw(value(option))]
        if draw(st.booleans()):
            options.append("--json")
        return [a for a in args if a] + options
    if shape == "trace":
        action = draw(st.sampled_from(["ls", "show", "html"]))
        args = ["trace", action, "--db", db]
        if action != "ls":
            args.append(draw(value("--trace")))
        if action == "html":
            out = draw(st.sampled_from(["out.html", "no/such/dir/out.html", ""]))
            args += ["-o", str(world.folder / out) if out else draw(HOSTILE)]
        if action == "ls" and draw(st.booleans()):
            args += ["--limit", draw(value("--limit"))]
        args += draw(st.lists(st.sampled_from(["--json", "--attributes"]), max_size=2))
        return [a for a in args if action == "show" or a != "--attributes"]
    args = ["eval", "--db", db, "--decider", draw(value("--decider"))]
    for option in draw(st.lists(st.sampled_from(["--trace", "--limit", "--timeout"]), max_size=2)):
        args += [option, draw(value(option))]
    return args + draw(st.lists(st.sampled_from(["--json", "--fail-on-diff"]), max_size=2))


def check(status: int, out: str, err: str) -> None:
    assert status in ALLOWED, (status, err)
    assert "Traceback" not in err, err
    for line in err.splitlines():
        assert line.startswith("greenroom: error: "), err
    assert RAW.search(out) is None, out[:500]
    assert RAW.search(err) is None, err[:500]


@settings(parent=FUZZ_SETTINGS, max_examples=200)
@given(data=st.data())
def test_any_command_line_gets_output_or_one_typed_error(
    world: World, capsys: pytest.CaptureFixture[str], data: st.DataObject
) -> None:
    letter = data.draw(st.one_of(st.none(), letter_row()), label="hostile letter")
    span = data.draw(st.one_of(st.none(), span_row(span_id=2)), label="hostile span")
    mail, traces = world.fresh(letter, span)
    args = data.draw(argv(world, mail, traces), label="argv")
    capsys.readouterr()
    try:
        status = main(args)
    except BaseException:
        record("cli-argv", "escaped")
        raise
    out, err = capsys.readouterr()
    try:
        check(status, out, err)
    except AssertionError:
        record("cli-argv", "escaped")
        raise
    record("cli-argv", "accepted" if status == 0 else "typed")


def test_real_processes_exit_with_the_documented_status(world: World) -> None:
    """The console script and ``python -m greenroom.cli``, started together, answered alike."""
    env = {**os.environ, "GREENROOM_DEBUG": ""}
    module = [sys.executable, "-m", "greenroom.cli"]
    mail = str(world.mail).encode()
    cases: list[tuple[list[Any], int]] = [
        ([str(GREENROOM), "dlq", "list", "--db", mail, "--actor", b"bill\xffing"], 2),
        ([*module, "dlq", "show", "--db", mail, str(2**63)], 2),
        ([*module, "dlq", "list", "--db", mail, "--since", "0001-01-01"], 2),
        ([str(GREENROOM), "dlq", "list", "--db", mail], 0),
        ([*module, "dlq", "show", "--db", mail, "5"], 0),
        ([*module, "dlq", "purge", "--db", mail, "--all"], 2),  # stdin is no terminal
        ([str(GREENROOM), "trace", "ls", "--db", str(world.junk)], 2),
        ([str(GREENROOM), "trace", "ls", "--db", str(world.missing)], 2),
    ]
    processes = [
        subprocess.Popen(
            argv_,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for argv_, _ in cases
    ]
    for process, (argv_, expected) in zip(processes, cases, strict=True):
        out, err = process.communicate(timeout=60)
        text_out, text_err = out.decode("utf-8"), err.decode("utf-8")
        assert process.returncode == expected, (argv_, text_err)
        check(process.returncode, text_out, text_err)
        assert (expected == 0) == (text_err == ""), text_err
    assert not world.missing.exists()
