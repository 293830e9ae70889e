"""``greenroom trace``: list traces, show one as a tree, write one as an HTML timeline.

::

    greenroom trace ls   [--db PATH] [--limit N] [--json]
    greenroom trace show ID [--db PATH] [--attributes] [--json]
    greenroom trace html ID -o FILE [--db PATH]

``ID`` is a trace id in hex as ``ls`` shows it, or any unique prefix of it.
``--db`` defaults to ``$GREENROOM_TRACE_DB``, else ``greenroom-traces.db``.
Also runs on its own: ``python -m greenroom.trace._cli ls --db PATH``.

The database is opened read-only (:class:`~greenroom.trace._reader.TraceReader`):
a missing file, or one that is not a trace store, is refused (status 2) and
never written. Rows are decoded totally, and everything printed is escaped
(:mod:`greenroom.trace._terminal`).

Exit status: 0 done; 1 no such trace; 2 bad input (a missing or foreign
database, a bad or ambiguous id); 3 the database failed; 4 internal error
(see :data:`greenroom.trace._command.EXIT_HELP`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import msgspec

from greenroom._errors import ErrorInfo, UsageError
from greenroom.trace._command import (
    EXIT_OK,
    CommandParser,
    NotFound,
    count_arg,
    guarded,
    say,
    say_json,
    text_arg,
)
from greenroom.trace._html import render_html
from greenroom.trace._ids import format_id
from greenroom.trace._reader import TraceReader, TraceSummary
from greenroom.trace._redact import redact_value
from greenroom.trace._rows import UNREADABLE
from greenroom.trace._span import Span
from greenroom.trace._terminal import terminal_json, terminal_text
from greenroom.trace._tree import format_duration, render_tree

__all__ = ["add_trace_commands", "main", "run_trace_command", "shown_span"]

DEFAULT_DB = "greenroom-traces.db"


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
    listing.add_argument("--limit", type=count_arg, default=20, help="at most this many (20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")

    show = actions.add_parser("show", help="one trace as a tree of spans")
    common(show)
    show.add_argument("id", type=text_arg, help="the trace id (hex, or a unique prefix)")
    show.add_argument("--attributes", action="store_true", help="show each span's attributes")
    show.add_argument("--json", action="store_true", help="the spans as one JSON array")

    page = actions.add_parser("html", help="one trace as a self-contained HTML timeline")
    common(page)
    page.add_argument("id", type=text_arg, help="the trace id (hex, or a unique prefix)")
    page.add_argument("-o", "--output", required=True, help="the HTML file to write")
    return trace


def run_trace_command(args: argparse.Namespace) -> int:
    """Run a parsed ``trace`` command; errors become one line on stderr; the exit status.

    See :func:`greenroom.trace._command.guarded` for how errors map to statuses.
    """
    return guarded(lambda: anyio.run(_run, args, backend="asyncio"))


async def _run(args: argparse.Namespace) -> int:
    async with TraceReader(args.db) as reader:
        if args.trace_action == "ls":
            _print_list(await reader.recent_traces(args.limit), as_json=args.json)
            return EXIT_OK
        found = await reader.find_trace(args.id)
        if not found:
            raise NotFound(f"no trace {args.id} in {args.db}")
        if len(found) > 1:
            raise UsageError(f"{args.id} names more than one trace; give more digits")
        spans = await reader.spans(found[0])
    if args.trace_action == "show":
        if args.json:
            say_json([_plain_span(span) for span in spans])
        else:
            shown = [shown_span(span) for span in spans]
            sys.stdout.write(
                terminal_text(render_tree(shown, attributes=args.attributes), multiline=True)
            )
        return EXIT_OK
    capped = [msgspec.structs.replace(s, attributes=_capped(s.attributes)) for s in spans]
    try:
        await anyio.Path(args.output).write_text(render_html(capped), encoding="utf-8")
    except OSError as error:
        raise UsageError(
            f"cannot write {args.output}: {error.strerror or error}; give -o a writable file"
        ) from error
    say(f"wrote {args.output} ({len(spans)} spans)")
    return EXIT_OK


def _capped(attributes: dict[str, Any]) -> dict[str, Any]:
    plain = redact_value(attributes)  # plain data, nesting past 64 levels cut
    return plain if isinstance(plain, dict) else {}


def _line(value: object) -> str:
    return terminal_text(value)


def shown_span(span: Span) -> Span:
    """``span`` ready for a terminal: every text escaped onto one line, attributes plain.

    Attribute values become escaped JSON text (nesting past 64 levels cut);
    a span whose row held unreadable values says so after its name (the
    values are listed under the ``greenroom.unreadable`` attribute); the
    span's times and ids are kept.
    """
    error = span.error
    problems = span.attributes.get(UNREADABLE)
    marker = f" [{len(problems)} unreadable value(s)]" if isinstance(problems, list) else ""
    return msgspec.structs.replace(
        span,
        kind=_line(span.kind),
        name=_line(span.name) + marker,
        actor=None if span.actor is None else _line(span.actor),
        attributes={
            _line(key): _line(value) if isinstance(value, str) else terminal_json(value)
            for key, value in _capped(span.attributes).items()
        },
        error=None
        if error is None
        else ErrorInfo(type=_line(error.type), message=_line(error.message), traceback=None),
    )


def _plain_span(span: Span) -> dict[str, Any]:
    plain = {f: getattr(span, f) for f in span.__struct_fields__}
    plain["attributes"] = _capped(span.attributes)
    plain["error"] = None if span.error is None else msgspec.to_builtins(span.error)
    return plain


def _when(at: float) -> str:
    try:
        return dt.datetime.fromtimestamp(at).isoformat(sep=" ", timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        return f"{at!r}"


def _print_list(traces: Sequence[TraceSummary], *, as_json: bool) -> None:
    if as_json:
        for t in traces:
            record = msgspec.to_builtins(t)
            record["trace_id"] = format_id(t.trace_id)
            say_json(record)
        return
    if not traces:
        say("(no traces)")
        return
    header = f"{'TRACE':16}  {'STARTED':23}  {'STATUS':6}  {'DURATION':>9}  {'SPANS':>5}"
    say(f"{header}  TOKENS  ROOT")
    for t in traces:
        status = t.status if not t.errors else f"{t.status}/{t.errors}✗"
        tokens = "-" if t.tokens is None else str(t.tokens)
        actor = f" @{t.actor}" if t.actor else ""
        unreadable = f"  [unreadable: {'; '.join(t.problems)}]" if t.problems else ""
        say(
            f"{format_id(t.trace_id)}  {_when(t.start):23}  {status:6}  "
            f"{format_duration(t.duration):>9}  {t.spans:>5}  {tokens:>6}  {t.name}{actor}"
            f"{unreadable}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trace`` commands on their own: ``main(["ls", "--db", path])``.

    A leading ``"trace"`` is accepted too. Returns (and, with ``argv`` of
    ``None``, exits with) the exit status; never raises otherwise.
    """

    def run() -> int:
        args_in = list(sys.argv[1:] if argv is None else argv)
        if not args_in or args_in[0] != "trace":
            args_in.insert(0, "trace")
        parser = CommandParser(prog="greenroom", description="greenroom traces.")
        add_trace_commands(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(args_in)
        status: int = args.run(args)
        return status

    status = guarded(run)
    if argv is None:
        sys.exit(status)
    return status


if __name__ == "__main__":
    main()
