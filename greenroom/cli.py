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
    greenroom dlq purge   SOURCE (ID... | --all [filters])

    SOURCE: --db PATH | --redis URL [--prefix P]

A letter's ``ID`` is its number in the database, or its entry id in the
Redis stream (``1700000000000-0``), as ``list`` shows it.

``WHEN`` is seconds since the epoch, an ISO 8601 time (``2025-01-31T12:00``,
local time unless it names its zone) or an age (``90s``, ``15m``, ``2h``,
``7d`` ago). ``redrive`` puts each letter's envelope back into its actor's
mailbox, keeping its envelope id and trace id; a running process that owns
the database (or reads the actor's stream) delivers it within its poll
interval, or the next one to open it does.

Exit status: 0 done; 1 a letter named by its number does not exist
(the others were still handled); 2 bad input (an unknown option, a missing
or foreign database, a bad time or id); 3 the database or Redis failed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import msgspec

from greenroom._errors import UsageError
from greenroom.mailbox import (
    DeadLetterRecord,
    MailboxUnavailable,
    RedisDeadLetterRecord,
    RedisDeadLetters,
    SqliteDeadLetters,
)
from greenroom.testing._eval import add_eval_commands
from greenroom.trace import redact_value
from greenroom.trace._cli import add_trace_commands

__all__ = ["main"]

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _BadInput(Exception):
    pass


def parse_when(text: str, *, now: float | None = None) -> float:
    """Seconds since the epoch from an epoch number, an ISO 8601 time or an age."""
    now = time.time() if now is None else now
    age = _AGE.match(text.strip())
    if age:
        return now - float(age.group(1)) * _UNITS[age.group(2)]
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _BadInput(
            f"cannot read the time {text!r}: give seconds since the epoch, an ISO 8601 time "
            "(2025-01-31T12:00) or an age (90s, 15m, 2h, 7d)"
        ) from None
    return moment.timestamp()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="greenroom", description="greenroom's command line.")
    commands = parser.add_subparsers(dest="command", required=True)
    dlq = commands.add_parser(
        "dlq", help="inspect and redrive dead letters of a mailbox database or of Redis"
    )
    actions = dlq.add_subparsers(dest="action", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        source = sub.add_mutually_exclusive_group(required=True)
        source.add_argument("--db", help="the mailbox database (an sqlite file)")
        source.add_argument("--redis", metavar="URL", help="the Redis of RedisMailboxes")
        sub.add_argument(
            "--prefix",
            default=None,
            help="with --redis: the mailboxes' key prefix (default greenroom:)",
        )

    def filters(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--actor", help="only letters for this actor")
        sub.add_argument("--reason", help="only this reason (handler_failed, unknown_message...)")
        sub.add_argument("--error-type", help="only this error type (ValueError, ...)")
        sub.add_argument("--since", help="only letters from this time on")
        sub.add_argument("--until", help="only letters before this time")

    listing = actions.add_parser("list", help="list dead letters, oldest first")
    common(listing)
    filters(listing)
    listing.add_argument("--limit", type=int, default=None, help="at most this many")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    show = actions.add_parser("show", help="show one dead letter in full")
    common(show)
    show.add_argument("id", help="the letter's number or entry id (from list)")
    show.add_argument("--json", action="store_true", help="as one JSON object")

    for name, text in (
        ("redrive", "put letters back into their actors' mailboxes"),
        ("purge", "delete letters"),
    ):
        sub = actions.add_parser(name, help=text)
        common(sub)
        sub.add_argument("ids", nargs="*", metavar="ID", help="letter numbers or entry ids")
        sub.add_argument("--all", action="store_true", help="every letter that matches filters")
        filters(sub)
    add_trace_commands(commands)
    add_eval_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) the exit status."""
    args = _parser().parse_args(argv)
    if args.command in ("trace", "eval"):
        status: int = args.run(args)
        if argv is None:
            sys.exit(status)
        return status
    try:
        status = anyio.run(_dlq, args, backend="asyncio")
    except (_BadInput, UsageError) as error:
        print(f"greenroom: {error}", file=sys.stderr)
        status = EXIT_USAGE
    except MailboxUnavailable as error:
        print(f"greenroom: {error}", file=sys.stderr)
        status = EXIT_FAILED
    if argv is None:
        sys.exit(status)
    return status


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "actor": args.actor,
        "reason": args.reason,
        "error_type": args.error_type,
        "since": None if args.since is None else parse_when(args.since),
        "until": None if args.until is None else parse_when(args.until),
    }


def _ids(args: argparse.Namespace, texts: Sequence[str]) -> list[Any]:
    """Letter ids as the source names them: numbers in a database, entry ids in Redis."""
    if args.redis is not None:
        return list(texts)  # checked by RedisDeadLetters
    numbers: list[Any] = []
    for text in texts:
        try:
            numbers.append(int(text))
        except ValueError:
            raise _BadInput(
                f"a dead letter in a database is named by its number (from list), got {text!r}"
            ) from None
    return numbers


@contextlib.asynccontextmanager
async def _letters(args: argparse.Namespace) -> AsyncIterator[Any]:
    """The dead letters of the source named (both kinds answer the same calls)."""
    if args.redis is None:
        if args.prefix is not None:
            raise _BadInput("--prefix goes with --redis, not with --db")
        async with SqliteDeadLetters.open(args.db) as letters:
            yield letters
        return
    async with RedisDeadLetters(args.redis, prefix=args.prefix or "greenroom:") as letters:
        yield letters


def _source(args: argparse.Namespace) -> str:
    if args.redis is None:
        return str(args.db)
    return f"{args.redis} (prefix {args.prefix or 'greenroom:'})"


async def _dlq(args: argparse.Namespace) -> int:
    if args.action in ("redrive", "purge"):
        if args.ids and args.all:
            raise _BadInput(f"{args.action}: give letter numbers or --all, not both")
        if not args.ids and not args.all:
            raise _BadInput(f"{args.action}: give letter numbers, or --all (with filters)")
        if args.ids and any(v is not None for v in _filters(args).values()):
            raise _BadInput(f"{args.action}: filters go with --all, not with letter numbers")
    if args.action == "list" and args.limit is not None and args.limit < 0:
        raise _BadInput("--limit must be >= 0")
    async with _letters(args) as letters:
        if args.action == "list":
            records = await letters.query(**_filters(args), limit=args.limit)
            _print_list(records, as_json=args.json)
            return EXIT_OK
        if args.action == "show":
            [letter_id] = _ids(args, [args.id])
            record = await letters.get(letter_id)
            if record is None:
                print(f"greenroom: no dead letter #{args.id} in {_source(args)}", file=sys.stderr)
                return EXIT_NOT_FOUND
            _print_one(record, as_json=args.json)
            return EXIT_OK
        ids = _ids(args, args.ids) or [r.id for r in await letters.query(**_filters(args))]
        if args.action == "redrive":
            outcomes = await letters.redrive(ids)
            missing = [o.id for o in outcomes if o.status == "not_found"]
            for outcome in outcomes:
                if outcome.status == "unreadable":
                    print(
                        f"#{outcome.id} left: its header cannot be read, so it cannot be "
                        "redriven (purge it)"
                    )
                elif outcome.status != "not_found":
                    print(
                        f"#{outcome.id} {outcome.status.replace('_', ' ')}: envelope "
                        f"{outcome.envelope_id:016x} to {outcome.actor}"
                    )
            print(f"redriven {sum(o.status == 'redriven' for o in outcomes)} letter(s)")
        else:
            existing = {r.id for r in await letters.query()} if args.ids else set(ids)
            missing = [i for i in ids if i not in existing]
            count = await letters.purge(ids)
            print(f"purged {count} letter(s)")
        if missing:
            numbers = ", ".join(f"#{i}" for i in missing)
            print(f"greenroom: no dead letter {numbers} in {_source(args)}", file=sys.stderr)
            return EXIT_NOT_FOUND
        return EXIT_OK


def _when(at: float) -> str:
    return dt.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="seconds")


def _plain(record: DeadLetterRecord | RedisDeadLetterRecord) -> dict[str, Any]:
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
        "envelope_id": f"{envelope.id:016x}",
        "trace_id": f"{envelope.trace_id:016x}",
        "sender": envelope.sender,
        "created_at": envelope.created_at,
        "body": body.hex() if isinstance(body, bytes) else redact_value(body),
        "body_is_raw": isinstance(body, bytes),
    }


def _print_list(
    records: Sequence[DeadLetterRecord | RedisDeadLetterRecord], *, as_json: bool
) -> None:
    if as_json:
        for record in records:
            print(msgspec.json.encode(_plain(record)).decode())
        return
    if not records:
        print("no dead letters")
        return
    for record in records:
        letter = record.letter
        error = f"{letter.error.type}: {letter.error.message}"
        if len(error) > 80:
            error = error[:77] + "..."
        print(
            f"#{record.id:<5} {_when(letter.at)}  {letter.actor}  {letter.reason}  "
            f"attempts={letter.envelope.attempt}  {error}"
        )
    print(f"{len(records)} letter(s)")


def _print_one(record: DeadLetterRecord | RedisDeadLetterRecord, *, as_json: bool) -> None:
    plain = _plain(record)
    if as_json:
        print(msgspec.json.encode(plain).decode())
        return
    for key in ("id", "actor", "reason", "error_type", "error_message", "attempts"):
        print(f"{key}: {plain[key]}")
    print(f"at: {_when(plain['at'])}")
    for key in ("envelope_id", "trace_id", "sender"):
        print(f"{key}: {plain[key]}")
    print(f"created_at: {_when(plain['created_at'])}")
    body = plain["body"]
    raw = " (raw bytes, hex: not msgpack)" if plain["body_is_raw"] else ""
    print(f"body{raw}: {body if raw else msgspec.json.encode(body).decode()}")
    if plain["traceback"]:
        print("traceback:")
        print(plain["traceback"].rstrip())
