"""``greenroom trace``: list traces, show one as a tree, write one as an HTML timeline.

::

    greenroom trace ls   [--db PATH] [--limit N] [--json]
    greenroom trace show ID [--db PATH] [--attributes] [--json]
    greenroom trace html ID -o FILE [--db PATH]

``ID`` is a trace id in hex as ``ls`` shows it, or any unique prefix of it.
``--db`` defaults to ``$GREENROOM_TRACE_DB``, else ``greenroom-traces.db``.
Also runs on its own: ``python -m greenroom.trace._cli ls --db PATH``.

Exit status: 0 done; 1 no such trace; 2 bad input (a missing database, a bad
or ambiguous id); 3 the database failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import msgspec

from greenroom._errors import UsageError
from greenroom.trace._errors import TraceStoreUnavailable
from greenroom.trace._html import render_html
from greenroom.trace._ids import format_id
from greenroom.trace._store import SqliteTraceStore
from greenroom.trace._tree import format_duration, render_tree

__all__ = ["add_trace_commands", "main", "run_trace_command"]

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
DEFAULT_DB = "greenroom-traces.db"


class _NotFound(Exception):
    pass


def add_trace_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``trace ls|show|html`` to an argparse ``add_subparsers()`` object.

    The ``trace`` parser sets ``run=run_trace_command`` as a default, so a
    host command line dispatches with ``args.run(args)`` (an exit status).
    Returns the ``trace`` parser.
    """
    trace: argparse.ArgumentParser = subparsers.add_parser(
        "trace", help="list, show and export recorded traces"
    )
    trace.set_defaults(run=run_trace_command)
    actions = trace.add_subparsers(dest="trace_action", required=True)
    default_db = os.environ.get("GREENROOM_TRACE_DB", DEFAULT_DB)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--db", default=default_db, help=f"the trace database ({default_db})")

    listing = actions.add_parser("ls", help="recent traces, newest first")
    common(listing)
    listing.add_argument("--limit", type=int, default=20, help="at most this many (20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    show = actions.add_parser("show", help="one trace as a tree of spans")
    common(show)
    show.add_argument("id", help="the trace id (hex, or a unique prefix)")
    show.add_argument("--attributes", action="store_true", help="show each span's attributes")
    show.add_argument("--json", action="store_true", help="the spans as one JSON array")

    page = actions.add_parser("html", help="one trace as a self-contained HTML timeline")
    common(page)
    page.add_argument("id", help="the trace id (hex, or a unique prefix)")
    page.add_argument("-o", "--output", required=True, help="the HTML file to write")
    return trace


def run_trace_command(args: argparse.Namespace) -> int:
    """Run a parsed ``trace`` command; print errors to stderr; return the exit status."""
    try:
        if not Path(args.db).is_file():
            raise UsageError(f"no trace database at {args.db}; pass --db PATH")
        return anyio.run(_run, args, backend="asyncio")
    except UsageError as error:
        print(f"greenroom: {error}", file=sys.stderr)
        return EXIT_USAGE
    except _NotFound as error:
        print(f"greenroom: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (TraceStoreUnavailable, OSError) as error:
        print(f"greenroom: {error}", file=sys.stderr)
        return EXIT_FAILED


async def _run(args: argparse.Namespace) -> int:
    async with SqliteTraceStore(args.db, retention_seconds=None, max_spans=None) as store:
        if args.trace_action == "ls":
            if args.limit < 0:
                raise UsageError("--limit must be >= 0")
            _print_list(await store.recent_traces(args.limit), as_json=args.json)
            return EXIT_OK
        found = await store.find_trace(args.id)
        if not found:
            raise _NotFound(f"no trace {args.id} in {args.db}")
        if len(found) > 1:
            raise UsageError(f"{args.id} names more than one trace; give more digits")
        spans = await store.spans(found[0])
    if args.trace_action == "show":
        if args.json:
            print(msgspec.json.encode(spans).decode())
        else:
            sys.stdout.write(render_tree(spans, attributes=args.attributes))
        return EXIT_OK
    await anyio.Path(args.output).write_text(render_html(spans), encoding="utf-8")
    print(f"wrote {args.output} ({len(spans)} spans)")
    return EXIT_OK


def _print_list(traces: Sequence[Any], *, as_json: bool) -> None:
    if as_json:
        for t in traces:
            record = msgspec.to_builtins(t)
            record["trace_id"] = format_id(t.trace_id)
            print(msgspec.json.encode(record).decode())
        return
    if not traces:
        print("(no traces)")
        return
    header = f"{'TRACE':16}  {'STARTED':23}  {'STATUS':6}  {'DURATION':>9}  {'SPANS':>5}"
    print(f"{header}  TOKENS  ROOT")
    for t in traces:
        when = dt.datetime.fromtimestamp(t.start).isoformat(sep=" ", timespec="milliseconds")
        status = t.status if not t.errors else f"{t.status}/{t.errors}✗"
        tokens = "-" if t.tokens is None else str(t.tokens)
        actor = f" @{t.actor}" if t.actor else ""
        print(
            f"{format_id(t.trace_id)}  {when:23}  {status:6}  {format_duration(t.duration):>9}  "
            f"{t.spans:>5}  {tokens:>6}  {t.name}{actor}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trace`` commands on their own: ``main(["ls", "--db", path])``.

    A leading ``"trace"`` is accepted too. Returns (and, with ``argv`` of
    ``None``, exits with) the exit status.
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in or args_in[0] != "trace":
        args_in.insert(0, "trace")
    parser = argparse.ArgumentParser(prog="greenroom", description="greenroom traces.")
    add_trace_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(args_in)
    status = run_trace_command(args)
    if argv is None:
        sys.exit(status)
    return status


if __name__ == "__main__":
    main()
