"""The ``greenroom`` command.

``greenroom trace ls|show|html``: the recorded traces of a trace store
(see :mod:`greenroom.trace`). ``greenroom eval --db PATH --decider
module:attr``: a decider run against the recorded decision steps, compared
(see :mod:`greenroom.testing`).

``greenroom dlq``: inspect and repair the dead letters of a durable mailbox
database (``SqliteMailboxes``, ``--db PATH``) or of the dead-letter stream
``<prefix>dead`` of ``RedisMailboxes`` (``--redis URL [--prefix P]``, the
prefix ``greenroom:`` by default)::

    greenroom dlq list    SOURCE [--actor A] [--reason R] [--error-type T]
                                 [--since WHEN] [--until WHEN] [--limit N] [--json]
    greenroom dlq show    SOURCE ID [--json]
    greenroom dlq redrive SOURCE (ID... | --all [filters])
    greenroom dlq purge   SOURCE (ID... | --all [filters]) [--dry-run | --yes]

    SOURCE: --db PATH | --redis URL [--prefix P]

A letter's ``ID`` is its number in the database, or its entry id in the
Redis stream (``1700000000000-0``), as ``list`` shows it.

``WHEN`` is seconds since the epoch, an ISO 8601 time (``2025-01-31T12:00``,
local time unless it names its zone) or an age (``90s``, ``15m``, ``2h``,
``7d`` ago). ``redrive`` puts each letter's envelope back into its actor's
mailbox, keeping its envelope id and trace id; a running process that owns
the database (or reads the actor's stream) delivers it within its poll
interval, or the next one to open it does. A letter whose envelope cannot be
read as stored is left (``unreadable``): purge it.

``purge`` deletes for good, so it asks first: on a terminal it shows how many
letters match and waits for ``y``; ``--yes`` skips the question (scripts);
``--dry-run`` lists what would be deleted and deletes nothing. Without a
terminal and without ``--yes`` it refuses (status 2) rather than delete
unasked. Any letter can be purged, whatever its row holds.

``list``, ``show`` and ``purge --dry-run`` open a database read-only; a
missing file or one that is not a mailbox database is refused (status 2)
and never created or changed. Every stored text printed (actor names,
errors, tracebacks, bodies) has its control characters escaped and known
secrets redacted (:mod:`greenroom.trace._terminal`); a body that cannot be
decoded is shown as hex, and values of a row that cannot be read are listed
under ``problems``.

Exit status, the same for every command (``greenroom --help`` shows it):
0 done; 1 not found or not done (a letter or trace named does not exist,
the others were still handled; a purge declined at the prompt; ``eval
--fail-on-diff`` with a decision that differs); 2 usage error (a bad option
or value, a missing or foreign database, a purge without ``--yes`` and no
terminal); 3 the database or Redis failed; 4 internal error, a bug in
greenroom; 130 interrupted. Every error is one line on stderr, ``greenroom:
error: ...``; a traceback is shown only with ``GREENROOM_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import math
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio

from greenroom._errors import UsageError
from greenroom.mailbox import (
    DeadLetterRecord,
    RedisDeadLetterRecord,
    RedisDeadLetters,
    SqliteDeadLetters,
)
from greenroom.testing._eval import add_eval_commands
from greenroom.trace import redact_value
from greenroom.trace._cli import add_trace_commands
from greenroom.trace._command import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    CommandParser,
    NotFound,
    count_arg,
    guarded,
    report,
    say,
    say_json,
    text_arg,
)
from greenroom.trace._terminal import terminal_json, terminal_text

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_USAGE",
    "main",
    "parse_when",
]

_AGE = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,15})?)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PURGE_BATCH = 500  # ids per delete: well under SQLite's limit of bound parameters
Record = DeadLetterRecord | RedisDeadLetterRecord


def parse_when(text: str, *, now: float | None = None) -> float:
    """Seconds since the epoch from an epoch number, an ISO 8601 time or an age.

    Raises:
        UsageError: ``text`` is none of these, or names a time no calendar
            holds (``0001-01-01`` in a zone east of UTC, ``nan``, ``1e400``).
    """
    now = time.time() if now is None else now
    stripped = text.strip()
    age = _AGE.fullmatch(stripped)
    when: float | None = None
    if age:
        when = now - float(age.group(1)) * _UNITS[age.group(2)]
    elif stripped.isascii():
        with contextlib.suppress(ValueError):
            when = float(stripped)
        if when is None:
            try:
                when = dt.datetime.fromisoformat(stripped).timestamp()
            except (ValueError, OverflowError, OSError):
                when = None
    if when is None or not math.isfinite(when):
        raise UsageError(
            f"cannot read the time {text!r}: give seconds since the epoch, an ISO 8601 time "
            "(2025-01-31T12:00) or an age (90s, 15m, 2h, 7d)"
        )
    return when


def _when_arg(text: str) -> float:
    try:
        return parse_when(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="greenroom", description="greenroom's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    dlq = commands.add_parser(
        "dlq", help="inspect and redrive dead letters of a mailbox database or of Redis"
    )
    actions = dlq.add_subparsers(dest="action", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        source = sub.add_mutually_exclusive_group(required=True)
        source.add_argument("--db", help="the mailbox database (an sqlite file)")
        source.add_argument(
            "--redis", metavar="URL", type=text_arg, help="the Redis of RedisMailboxes"
        )
        sub.add_argument(
            "--prefix",
            default=None,
            type=text_arg,
            help="with --redis: the mailboxes' key prefix (default greenroom:)",
        )

    def filters(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--actor", type=text_arg, help="only letters for this actor")
        sub.add_argument(
            "--reason", type=text_arg, help="only this reason (handler_failed, unknown_message...)"
        )
        sub.add_argument(
            "--error-type", type=text_arg, help="only this error type (ValueError, ...)"
        )
        sub.add_argument("--since", type=_when_arg, help="only letters from this time on")
        sub.add_argument("--until", type=_when_arg, help="only letters before this time")

    listing = actions.add_parser("list", help="list dead letters, oldest first")
    common(listing)
    filters(listing)
    listing.add_argument("--limit", type=count_arg, default=None, help="at most this many")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    show = actions.add_parser("show", help="show one dead letter in full")
    common(show)
    show.add_argument("id", type=text_arg, help="the letter's number or entry id (from list)")
    show.add_argument("--json", action="store_true", help="as one JSON object")

    for name, text in (
        ("redrive", "put letters back into their actors' mailboxes"),
        ("purge", "delete letters (asks first; --yes, --dry-run)"),
    ):
        sub = actions.add_parser(name, help=text)
        common(sub)
        sub.add_argument(
            "ids", nargs="*", metavar="ID", type=text_arg, help="letter numbers or entry ids"
        )
        sub.add_argument("--all", action="store_true", help="every letter that matches filters")
        filters(sub)
        if name == "purge":
            answer = sub.add_mutually_exclusive_group()
            answer.add_argument(
                "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
            )
            answer.add_argument("--yes", action="store_true", help="delete without asking")
    add_trace_commands(commands)
    add_eval_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) the exit status.

    Never raises: every error is one line on stderr and an exit status
    (see the module docs).
    """
    if argv is None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    status = guarded(lambda: _run(argv))
    if argv is None:
        sys.exit(status)
    return status


def _run(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command in ("trace", "eval"):
        status: int = args.run(args)
        return status
    return anyio.run(_dlq, args, backend="asyncio")


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "actor": args.actor,
        "reason": args.reason,
        "error_type": args.error_type,
        "since": args.since,
        "until": args.until,
    }


def _ids(args: argparse.Namespace, texts: Sequence[str]) -> list[Any]:
    """Letter ids as the source names them: numbers in a database, entry ids in Redis."""
    if args.redis is not None:
        return list(texts)  # checked by RedisDeadLetters
    numbers: list[Any] = []
    for text in texts:
        try:
            number = int(text, 10) if text.isascii() else -1
        except ValueError:
            number = -1
        if not 0 <= number < 1 << 63:
            raise UsageError(
                "a dead letter in a database is named by its number from 0 to 2**63 - 1 "
                f"(from list), got {text!r}"
            )
        numbers.append(number)
    return numbers


@contextlib.asynccontextmanager
async def _letters(args: argparse.Namespace, *, read_only: bool) -> AsyncIterator[Any]:
    """The dead letters of the source named (both kinds answer the same calls)."""
    if args.redis is None:
        if args.prefix is not None:
            raise UsageError("--prefix goes with --redis, not with --db")
        async with SqliteDeadLetters.open(args.db, read_only=read_only) as letters:
            yield letters
        return
    async with RedisDeadLetters(args.redis, prefix=args.prefix or "greenroom:") as letters:
        yield letters


def _source(args: argparse.Namespace) -> str:
    if args.redis is None:
        return str(args.db)
    return f"{args.redis} (prefix {args.prefix or 'greenroom:'})"


def _check(args: argparse.Namespace) -> None:
    if args.action not in ("redrive", "purge"):
        return
    if args.ids and args.all:
        raise UsageError(f"{args.action}: give letter numbers or --all, not both")
    if not args.ids and not args.all:
        raise UsageError(f"{args.action}: give letter numbers, or --all (with filters)")
    if args.ids and any(v is not None for v in _filters(args).values()):
        raise UsageError(f"{args.action}: filters go with --all, not with letter numbers")
    if args.action == "purge" and not (args.yes or args.dry_run) and not _on_a_terminal():
        raise UsageError(
            "purge deletes letters for good and stdin is not a terminal to ask on: "
            "pass --yes to delete, or --dry-run to see what would be deleted"
        )


def _on_a_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError, OSError):
        return False


async def _dlq(args: argparse.Namespace) -> int:
    _check(args)
    purging = args.action == "purge"
    read_only = args.action in ("list", "show") or (purging and args.dry_run)
    async with _letters(args, read_only=read_only) as letters:
        if args.action == "list":
            _print_list(await letters.query(**_filters(args), limit=args.limit), as_json=args.json)
            return EXIT_OK
        if args.action == "show":
            [letter_id] = _ids(args, [args.id])
            record = await letters.get(letter_id)
            if record is None:
                raise NotFound(f"no dead letter #{args.id} in {_source(args)}")
            _print_one(record, as_json=args.json)
            return EXIT_OK
        if args.ids:
            ids = _ids(args, args.ids)
            found = {i: await letters.get(i) for i in ids}
            missing = [i for i, record in found.items() if record is None]
            records = [record for record in found.values() if record is not None]
        else:
            missing, records = [], await letters.query(**_filters(args))
        if purging:
            done = await _purge(args, letters, records)
        else:
            done = await _redrive(letters, [r.id for r in records])
    if missing:
        numbers = ", ".join(f"#{i}" for i in missing)
        raise NotFound(f"no dead letter {numbers} in {_source(args)}")
    return done


async def _redrive(letters: Any, ids: list[Any]) -> int:
    outcomes = await letters.redrive(ids) if ids else []
    for outcome in outcomes:
        if outcome.status == "unreadable":
            say(
                f"#{outcome.id} left: its envelope cannot be read, so it cannot be "
                "redriven (purge it)"
            )
        elif outcome.status != "not_found":
            say(
                f"#{outcome.id} {outcome.status.replace('_', ' ')}: envelope "
                f"{outcome.envelope_id:016x} to {outcome.actor}"
            )
    say(f"redriven {sum(o.status == 'redriven' for o in outcomes)} letter(s)")
    return EXIT_OK


async def _purge(args: argparse.Namespace, letters: Any, records: list[Record]) -> int:
    if args.dry_run:
        for record in records:
            say(_list_line(record))
        say(f"would purge {len(records)} letter(s) from {_source(args)} (dry run: none deleted)")
        return EXIT_OK
    if records and not args.yes and not await _confirm(len(records), _source(args)):
        report("nothing purged")
        return EXIT_NOT_FOUND
    ids = [record.id for record in records]
    count = 0
    for at in range(0, len(ids), _PURGE_BATCH):
        count += await letters.purge(ids[at : at + _PURGE_BATCH])
    say(f"purged {count} letter(s)")
    return EXIT_OK


async def _confirm(count: int, source: str) -> bool:
    sys.stderr.write(
        terminal_text(f"purge {count} dead letter(s) from {source}? This cannot be undone.")
        + " [y/N] "
    )
    sys.stderr.flush()
    answer = await anyio.to_thread.run_sync(sys.stdin.readline)
    return answer.strip().lower() in ("y", "yes")


def _when(at: object) -> str:
    try:
        return dt.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")  # type: ignore[arg-type]
    except (OverflowError, OSError, ValueError, TypeError):
        return f"{at!r} (not a time)"


def _hex(value: object) -> str:
    return f"{value:016x}" if type(value) is int else repr(value)


def _plain(record: Record) -> dict[str, Any]:
    letter = record.letter
    envelope = letter.envelope
    body = envelope.body
    return {
        "id": record.id,
        "at": letter.at,
        "actor": letter.actor,
        "reason": letter.reason,
        "error_type": letter.error.type,
        "error_message": letter.error.message,
        "traceback": letter.error.traceback,
        "attempts": envelope.attempt,
        "envelope_id": _hex(envelope.id),
        "trace_id": _hex(envelope.trace_id),
        "sender": envelope.sender,
        "created_at": envelope.created_at,
        "body": body.hex() if isinstance(body, bytes) else redact_value(body),
        "body_is_raw": isinstance(body, bytes),
        "problems": list(record.problems),
    }


def _list_line(record: Record) -> str:
    letter = record.letter
    error = f"{letter.error.type}: {letter.error.message}"
    if len(error) > 80:
        error = error[:77] + "..."
    unreadable = f"  [{len(record.problems)} unreadable value(s)]" if record.problems else ""
    return (
        f"#{record.id:<5} {_when(letter.at)}  {letter.actor}  {letter.reason}  "
        f"attempts={letter.envelope.attempt}  {error}{unreadable}"
    )


def _print_list(records: Sequence[Record], *, as_json: bool) -> None:
    if as_json:
        for record in records:
            say_json(_plain(record))
        return
    if not records:
        say("no dead letters")
        return
    for record in records:
        say(_list_line(record))
    say(f"{len(records)} letter(s)")


def _print_one(record: Record, *, as_json: bool) -> None:
    plain = _plain(record)
    if as_json:
        say_json(plain)
        return
    for key in ("id", "actor", "reason", "error_type", "error_message", "attempts"):
        say(f"{key}: {plain[key]}")
    say(f"at: {_when(plain['at'])}")
    for key in ("envelope_id", "trace_id", "sender"):
        say(f"{key}: {plain[key]}")
    say(f"created_at: {_when(plain['created_at'])}")
    body = plain["body"]
    raw = " (raw bytes, hex: not msgpack)" if plain["body_is_raw"] else ""
    say(f"body{raw}: {body if raw else terminal_json(body)}")
    for problem in plain["problems"]:
        say(f"unreadable: {problem}")
    if plain["traceback"]:
        say("traceback:")
        say(plain["traceback"].rstrip(), multiline=True)


if __name__ == "__main__":
    main()
