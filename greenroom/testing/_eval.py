"""Eval: run a decider against the contexts recorded in traces, and compare its decisions.

::

    greenroom eval --db TRACES --decider module:attr [--trace ID ...] [--limit N]
                   [--timeout SECONDS] [--json] [--progress] [--fail-on-diff]

Each recorded decision step (see :mod:`greenroom.testing._recorded` for how
``llm`` spans group into steps) gives its :class:`Context` back from the
``greenroom.context`` attribute; the decider decides on it once, and its
decisions are compared with the recorded ones by this rule:

- ``CallTool``: the tool name and the arguments (as JSON data) are equal;
  the call ``id`` is ignored (ids are made up per run).
- ``Reply``: the ``text`` is equal (``value`` is decoded from the text).
- ``Delegate``: ``to`` and ``task`` are equal. ``Finish``: the type alone.
- A step's decisions match as a multiset: parallel tool calls in another
  order still match.

A step is *skipped* when the recorded step failed or recorded no context; a
decider that raises (or runs past ``--timeout``, 60 s) on a step counts as a
difference. ``--decider`` names a :class:`~greenroom.decide.Decider` object,
or a zero-argument callable returning one, as ``package.module:attribute``;
the current directory is importable. Without ``--trace``, the ``--limit``
(20) most recent traces are used.

A progress bar goes to stderr when stderr is a terminal, or with
``--progress``. The trace database is opened read-only and must be a trace
store. Exit status: 0 done, whether or not decisions differ; 1 with
``--fail-on-diff`` when a step differs; 2 bad input (a missing or foreign
database, a bad id or decider); 3 the database failed; 4 internal error.
Recorded text printed is escaped (see :mod:`greenroom.trace._terminal`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal, TextIO

import anyio
import msgspec

from greenroom._errors import UsageError
from greenroom.decide import Context, Decider
from greenroom.testing._recorded import RecordedStep, decision_steps, plain, show
from greenroom.trace import format_id
from greenroom.trace._command import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    count_arg,
    guarded,
    say,
    say_json,
    seconds_arg,
    text_arg,
)
from greenroom.trace._reader import TraceReader

__all__ = [
    "EvalReport",
    "StepOutcome",
    "add_eval_commands",
    "decision_key",
    "evaluate",
    "load_decider",
    "run_eval_command",
    "same_decisions",
]

EXIT_DIFFERENT = EXIT_NOT_FOUND  # 1: --fail-on-diff and a step differs
DEFAULT_DB = "greenroom-traces.db"


class StepOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one recorded step compared.

    ``status``: ``"match"``, ``"differ"``, ``"error"`` (the decider raised;
    ``error`` says what) or ``"skipped"`` (``error`` says why).
    ``recorded`` and ``new`` are the decisions as plain data.
    """

    trace_id: str
    step: int
    span_id: str
    actor: str | None
    status: Literal["match", "differ", "error", "skipped"]
    recorded: list[object] | None
    new: list[object] | None = None
    error: str | None = None


class EvalReport(msgspec.Struct, frozen=True, kw_only=True):
    """The result of :func:`evaluate`: counts, and every step's outcome in order.

    ``differ`` counts steps whose decisions differ and steps the decider
    failed on; ``matched + differ + skipped == steps``.
    """

    decider: str
    traces: int
    steps: int
    matched: int
    differ: int
    skipped: int
    outcomes: tuple[StepOutcome, ...]

    @property
    def differences(self) -> tuple[StepOutcome, ...]:
        """The outcomes that differ or failed."""
        return tuple(o for o in self.outcomes if o.status in ("differ", "error"))


def decision_key(decision: object) -> str:
    """The part of a decision (as plain data) that eval compares, as canonical JSON."""
    if not isinstance(decision, dict):
        return show(decision, limit=1 << 30)
    kind = decision.get("type")
    if kind == "CallTool":
        kept = {"name": decision.get("name"), "arguments": decision.get("arguments")}
    elif kind == "Reply":
        kept = {"text": decision.get("text")}
    elif kind == "Delegate":
        kept = {"to": decision.get("to"), "task": decision.get("task")}
    elif kind == "Finish":
        kept = {}
    else:
        kept = {k: v for k, v in decision.items() if k != "id"}
    return msgspec.json.encode({"type": kind, **kept}, order="sorted").decode()


def same_decisions(recorded: Sequence[object], new: Sequence[object]) -> bool:
    """Whether two steps' decisions match by the rule in the module docs."""
    return sorted(map(decision_key, recorded)) == sorted(map(decision_key, new))


async def evaluate(
    steps: Sequence[RecordedStep],
    decider: Decider,
    *,
    timeout: float = 60.0,
    on_step: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Run ``decider`` on each recorded step's context, one at a time, and compare.

    ``timeout`` (seconds) bounds each decision; ``on_step(done, total)`` is
    called after each step. A decider's exception is an outcome, not raised;
    cancellation propagates.
    """
    outcomes: list[StepOutcome] = []
    for done, step in enumerate(steps, 1):
        outcomes.append(await _outcome(step, decider, timeout))
        if on_step is not None:
            on_step(done, len(steps))
    count = {s: sum(o.status == s for o in outcomes) for s in ("match", "skipped")}
    return EvalReport(
        decider=decider.name,
        traces=len({s.trace_id for s in steps}),
        steps=len(outcomes),
        matched=count["match"],
        differ=len(outcomes) - count["match"] - count["skipped"],
        skipped=count["skipped"],
        outcomes=tuple(outcomes),
    )


async def _outcome(step: RecordedStep, decider: Decider, timeout: float) -> StepOutcome:
    facts: dict[str, Any] = {
        "trace_id": format_id(step.trace_id),
        "step": step.step,
        "span_id": format_id(step.span_id),
        "actor": step.actor,
        "recorded": step.decisions,
    }
    if step.decisions is None or step.context is None:
        why = "no context recorded" if step.context is None else "the recorded step failed"
        return StepOutcome(status="skipped", error=why, **facts)
    try:
        context = msgspec.convert(step.context, Context)
    except msgspec.ValidationError as error:
        return StepOutcome(status="skipped", error=f"the recorded context: {error}", **facts)
    try:
        with anyio.fail_after(timeout):
            result = await decider.decide(context)
    except TimeoutError:
        return StepOutcome(status="error", error=f"no decision within {timeout:g} s", **facts)
    except Exception as error:
        return StepOutcome(status="error", error=f"{type(error).__name__}: {error}", **facts)
    new = plain(result.decisions)
    assert isinstance(new, list)
    status: Literal["match", "differ"] = (
        "match" if same_decisions(step.decisions, new) else "differ"
    )
    return StepOutcome(status=status, new=new, **facts)


def load_decider(path: str) -> Decider:
    """The decider ``package.module:attribute`` names (an object, or a factory called once).

    Raises:
        UsageError: the path is malformed, does not import, or names
            neither a Decider nor a zero-argument callable returning one.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"--decider is module:attribute (my_app.deciders:candidate), got {path!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as error:  # importing user code may raise anything
        raise UsageError(
            f"cannot load the decider {path!r}: {type(error).__name__}: {error}; check the path"
        ) from error
    if not isinstance(found, Decider) or isinstance(found, type):
        if not callable(found):
            raise UsageError(f"{path!r} is a {type(found).__name__}, not a Decider or a factory")
        try:
            found = found()
        except Exception as error:
            raise UsageError(f"the decider factory {path!r} raised {error!r}") from error
    if not isinstance(found, Decider) or isinstance(found, type):
        raise UsageError(
            f"{path!r} gave a {type(found).__name__}, not a Decider "
            "(an object with a `name` and an async `decide(context)`)"
        )
    return found


class _Progress:
    """A one-line progress bar on a text stream, redrawn at most ten times a second."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self._stream = stream
        self._width = width
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        filled = self._width * done // max(total, 1)
        bar = "#" * filled + "." * (self._width - filled)
        end = "\n" if done >= total else ""
        self._stream.write(f"\reval [{bar}] {done}/{total} steps{end}")
        self._stream.flush()


def add_eval_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``eval`` to an argparse ``add_subparsers()`` object; ``run=run_eval_command``."""
    default_db = os.environ.get("GREENROOM_TRACE_DB", DEFAULT_DB)
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval", help="run a decider on recorded decision steps and compare its decisions"
    )
    parser.set_defaults(run=run_eval_command)
    parser.add_argument("--db", default=default_db, help=f"the trace database ({default_db})")
    parser.add_argument(
        "--decider", required=True, type=text_arg, help="module:attribute of a Decider/factory"
    )
    parser.add_argument(
        "--trace",
        action="append",
        default=[],
        metavar="ID",
        type=text_arg,
        help="a trace id (repeatable)",
    )
    parser.add_argument(
        "--limit", type=count_arg, default=20, help="without --trace: recent traces (20)"
    )
    parser.add_argument(
        "--timeout", type=seconds_arg, default=60.0, help="seconds per decision (60)"
    )
    parser.add_argument("--json", action="store_true", help="the report as one JSON object")
    parser.add_argument("--progress", action="store_true", help="a progress bar, also off a tty")
    parser.add_argument("--fail-on-diff", action="store_true", help="exit 1 when a step differs")
    return parser


def run_eval_command(args: argparse.Namespace) -> int:
    """Run a parsed ``eval`` command; errors become one line on stderr; the exit status.

    See :func:`greenroom.trace._command.guarded` for how errors map to statuses.
    """
    return guarded(lambda: _command(args))


def _command(args: argparse.Namespace) -> int:
    if args.limit < 0 or not args.timeout > 0:
        raise UsageError("--limit is >= 0 and --timeout is > 0 seconds")
    report: EvalReport = anyio.run(_run, args, backend="asyncio")
    if args.json:
        say_json(report)
    else:
        _print_report(report)
    return EXIT_DIFFERENT if args.fail_on_diff and report.differ else EXIT_OK


async def _resolve(reader: TraceReader, trace: str) -> int:
    found = await reader.find_trace(trace)
    if len(found) != 1:
        problem = "no trace" if not found else "more than one trace"
        raise UsageError(
            f"{problem} in {reader.path} has the id {trace!r}; `greenroom trace ls` lists them"
        )
    return found[0]


async def _run(args: argparse.Namespace) -> EvalReport:
    async with TraceReader(args.db) as reader:  # the database is checked first
        decider = load_decider(args.decider)
        if args.trace:
            trace_ids = [await _resolve(reader, t) for t in args.trace]
        else:
            trace_ids = [t.trace_id for t in await reader.recent_traces(args.limit)]
        steps = [s for t in trace_ids for s in decision_steps(await reader.spans(t))]
    show_progress = args.progress or sys.stderr.isatty()
    progress = _Progress(sys.stderr) if show_progress and steps else None
    report = await evaluate(steps, decider, timeout=args.timeout, on_step=progress)
    return msgspec.structs.replace(report, traces=len(trace_ids))


def _decisions_text(decisions: Sequence[object] | None) -> str:
    shown = []
    for d in decisions or ():
        if not isinstance(d, dict):
            shown.append(show(d, 40))
        elif d.get("type") == "CallTool":
            shown.append(f"{d.get('name')}({show(d.get('arguments'), 40)})")
        elif d.get("type") == "Reply":
            shown.append(f"Reply {show(d.get('text'), 40)}")
        elif d.get("type") == "Delegate":
            shown.append(f"Delegate {d.get('to')}: {show(d.get('task'), 30)}")
        else:
            shown.append(str(d.get("type")))
    text = ", ".join(shown)
    return text if len(text) <= 50 else text[:47] + "..."


def _print_report(report: EvalReport) -> None:
    share = f" ({100 * report.matched // max(1, report.steps - report.skipped)}%)"
    say(f"eval: {report.decider!r} on {report.steps} decision steps of {report.traces} traces")
    say(
        f"{report.matched} of {report.steps - report.skipped} decisions match{share}; "
        f"{report.differ} differ; {report.skipped} skipped"
    )
    rows = report.differences
    if not rows:
        return
    say()
    say(f"{'TRACE':16}  {'STEP':>4}  {'ACTOR':12}  {'RECORDED':50}  NEW")
    for o in rows:
        new = _decisions_text(o.new) if o.status == "differ" else f"error: {o.error}"
        actor = (o.actor or "-")[:12]
        say(f"{o.trace_id}  {o.step:>4}  {actor:12}  {_decisions_text(o.recorded):50}  {new}")
