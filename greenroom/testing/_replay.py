"""Replay: re-run recorded code with a trace's decisions and tool outputs served back in order.

::

    replay = await Replay.load(store, "5f3a")          # a SqliteTraceStore, a trace id (prefix)
    access = ToolAccess(registry, grants=..., interceptors=[replay.tools])
    ... run the same code, with replay.decider as its decider ...
    replay.check()                                     # raises ReplayDiverged, else all matched

The rules (what a step and a call are: :mod:`greenroom.testing._recorded`):

- Steps and calls are served **per actor, in recorded order**: a
  ``decide()`` made while actor ``a`` handles a message gets ``a``'s next
  recorded step, so concurrent actors may interleave differently.
- The decider checks that its context equals the recorded one; the tool
  interceptor checks the tool name and its validated arguments (as the
  store keeps them: plain JSON, redacted). Nothing runs: a recorded failure
  is raised again (a ``ModelError`` for a step, a ``ToolFailed`` naming the
  recorded error type for a call). Refused calls are not served: the code
  under replay meets the same refusal before it reaches the interceptor.
- ``mode="raise"`` (default) raises :class:`ReplayDiverged` at the first
  difference. ``mode="collect"`` serves the recorded answer anyway and keeps
  a list; it still raises where nothing fits (a step or call beyond the
  recording, another tool's output). Either way :meth:`Replay.report` lists
  every divergence, then the recorded steps and calls never asked for, and
  :meth:`Replay.check` raises the first.

Store reads, time and randomness are not replayed.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Literal

import msgspec

from greenroom._errors import ErrorInfo, NotRetryable, RuntimeFailure, UsageError
from greenroom.decide import (
    AllModelsFailed,
    Context,
    Decision,
    DecisionResult,
    Failure,
    ModelError,
    Usage,
)
from greenroom.testing._recorded import (
    CONTEXT,
    RecordedStep,
    RecordedToolCall,
    decision_steps,
    first_difference,
    plain,
    resolve_trace,
    show,
    tool_calls,
    value_at,
)
from greenroom.tools import Invocation, Proceed, ToolFailed
from greenroom.trace import Span, SqliteTraceStore, current_span, current_tracer, format_id, genai

__all__ = ["Divergence", "Replay", "ReplayDecider", "ReplayDiverged", "ReplayReport", "ReplayTools"]

_DECISIONS = tuple[Decision, ...]
_Kind = Literal["decision", "tool"]
_FAILED = re.compile(r"^tool '.*?' failed: ([\w.]+): (.*)$", re.DOTALL)
_Mode = Literal["raise", "collect"]


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    """One place a replayed run differed from its recording.

    Attributes:
        trace_id: the recorded trace (16 hex digits).
        kind: ``"decision"`` or ``"tool"``.
        step: the step's (or call's) position in the trace, counting from 1
            over all actors; for one beyond the recording, the actor's count + 1.
        actor: the actor that made it, ``None`` outside any actor.
        what: ``"context"``, ``"arguments"``, ``"tool"`` (another tool was
            called), ``"output"`` (the recorded output no longer fits),
            ``"extra"`` (more than recorded) or ``"missing"`` (recorded, never asked for).
        path: the JSON path of the first difference (``$.messages[2].content``), or ``""``.
        expected: what the recording holds there, as short JSON.
        found: what the run gave, as short JSON.
    """

    trace_id: str
    kind: Literal["decision", "tool"]
    step: int
    actor: str | None
    what: str
    path: str = ""
    expected: str = ""
    found: str = ""

    def describe(self) -> str:
        """One line: where, what differed, recorded and found."""
        who = f"actor {self.actor!r}" if self.actor is not None else "no actor"
        where = f"{'decision step' if self.kind == 'decision' else 'tool call'} {self.step}"
        detail = {
            "context": "the decider got another context",
            "arguments": "the tool got other arguments",
            "tool": "another tool was called",
            "output": "the recorded output does not fit the tool's Output any more",
            "extra": f"the run made more {self.kind} calls than the recording holds",
            "missing": "the recording holds it, the run never asked for it",
        }.get(self.what, self.what)
        at = f" at {self.path}" if self.path else ""
        values = (
            f": recorded {self.expected}, got {self.found}" if self.expected or self.found else ""
        )
        return f"trace {self.trace_id}, {where} ({who}): {detail}{at}{values}"


class ReplayDiverged(RuntimeFailure, NotRetryable):
    """A replayed run differed from its recording; the :class:`Divergence` says where.

    The facts are attributes too: ``trace_id``, ``kind``, ``step``,
    ``actor``, ``what``, ``path``, ``expected``, ``found``. Not retryable: a
    retry of the same message would diverge the same way.
    """

    def __init__(self, divergence: Divergence) -> None:
        super().__init__(
            f"replay diverged: {divergence.describe()}; the code under replay no longer does "
            "what the recorded run did: fix the change, or record a new trace"
        )
        self.divergence = divergence
        for field in divergence.__struct_fields__:
            setattr(self, field, getattr(divergence, field))


class ReplayReport(msgspec.Struct, frozen=True, kw_only=True):
    """How a replayed run compared with its recording, so far.

    ``decisions`` and ``tool_calls`` count what the recording holds;
    ``served_decisions`` and ``served_tool_calls`` what the run asked for
    and got; ``divergences`` lists every difference in the order found,
    then the steps and calls never asked for (``what="missing"``).
    """

    trace_id: str
    decisions: int
    tool_calls: int
    served_decisions: int
    served_tool_calls: int
    divergences: tuple[Divergence, ...]

    @property
    def ok(self) -> bool:
        """Whether the run matched the recording step for step."""
        return not self.divergences


def _current_actor() -> str | None:
    span = current_span.get()
    actor = getattr(span, "actor", None) or getattr(span, "recipient", None)
    return actor if isinstance(actor, str) else None


class Replay:
    """A recorded trace, ready to be served back to a re-run; see the module docs.

    Make one with :meth:`load` (from a store) or :meth:`from_spans`. Use
    :attr:`decider` in place of the run's decider and :attr:`tools` as the
    first interceptor of its ``ToolAccess``. Use it for one run.
    """

    def __init__(self, spans: Sequence[Span], *, mode: _Mode = "raise") -> None:
        if mode not in ("raise", "collect"):
            raise UsageError(f"Replay mode is 'raise' or 'collect', got {mode!r}")
        trace_ids = {s.trace_id for s in spans}
        if len(trace_ids) != 1:
            raise UsageError(f"replay one trace's spans; got spans of {len(trace_ids)} traces")
        self.trace_id = format_id(trace_ids.pop())
        self.mode = mode
        self.steps = decision_steps(spans)
        self.calls = tool_calls(spans)
        self._steps: defaultdict[str | None, deque[RecordedStep]] = defaultdict(deque)
        self._calls: defaultdict[str | None, deque[RecordedToolCall]] = defaultdict(deque)
        for step in self.steps:
            self._steps[step.actor].append(step)
        for call in self.calls:
            self._calls[call.actor].append(call)
        self._served = [0, 0]  # decisions, tool calls
        self._asked: defaultdict[tuple[str, str | None], int] = defaultdict(int)
        self._divergences: list[Divergence] = []
        self.decider = ReplayDecider(self)
        """The :class:`ReplayDecider` serving the recorded decisions."""
        self.tools = ReplayTools(self)
        """The :class:`ReplayTools` interceptor serving the recorded tool outputs."""

    @classmethod
    async def load(
        cls,
        store: SqliteTraceStore,
        trace: int | str,
        *,
        mode: _Mode = "raise",
    ) -> Replay:
        """The replay of trace ``trace`` (an id, or a unique hex prefix) of an open store.

        Raises:
            UsageError: no such trace, an ambiguous prefix, or a bad ``mode``.
            TraceStoreUnavailable: the read failed.
        """
        trace_id = await resolve_trace(store, trace)
        spans = await store.spans(trace_id)
        if not spans:
            raise UsageError(f"no spans of trace {format_id(trace_id)} in {store!r}")
        return cls(spans, mode=mode)

    @classmethod
    def from_spans(cls, spans: Sequence[Span], *, mode: _Mode = "raise") -> Replay:
        """The replay of spans in memory (``tracer.drain()``), all of one trace."""
        return cls(spans, mode=mode)

    def report(self) -> ReplayReport:
        """Every divergence so far, then the recorded steps and calls not asked for."""
        missing = [
            self._divergence("decision", r.step, r.actor, "missing")
            for queue in self._steps.values()
            for r in queue
        ] + [
            self._divergence("tool", r.step, r.actor, "missing")
            for queue in self._calls.values()
            for r in queue
        ]
        return ReplayReport(
            trace_id=self.trace_id,
            decisions=len(self.steps),
            tool_calls=len(self.calls),
            served_decisions=self._served[0],
            served_tool_calls=self._served[1],
            divergences=(*self._divergences, *sorted(missing, key=lambda d: (d.kind, d.step))),
        )

    def check(self) -> None:
        """Raise the first divergence of :meth:`report` as :class:`ReplayDiverged`."""
        divergences = self.report().divergences
        if divergences:
            raise ReplayDiverged(divergences[0])

    def _divergence(
        self, kind: _Kind, step: int, actor: str | None, what: str, *details: str
    ) -> Divergence:
        path, expected, found = (*details, "", "", "")[:3]
        return Divergence(
            trace_id=self.trace_id, kind=kind, step=step, actor=actor, what=what,
            path=path, expected=expected, found=found,
        )  # fmt: skip

    def _diverge(self, divergence: Divergence, *, fatal: bool) -> None:
        self._divergences.append(divergence)
        if fatal or self.mode == "raise":
            raise ReplayDiverged(divergence)

    def _next(self, kind: _Kind, actor: str | None) -> object:
        queue = (self._steps if kind == "decision" else self._calls).get(actor)
        self._asked[kind, actor] += 1
        if not queue:
            n = self._asked[kind, actor]
            extra = self._divergence(kind, n, actor, "extra", "", f"{n - 1} calls", f"call {n}")
            self._diverge(extra, fatal=True)
        self._served[kind == "tool"] += 1
        assert queue is not None
        return queue.popleft()

    def _compare(
        self, kind: _Kind, step: int, actor: str | None, what: str, expected: object, found: object
    ) -> None:
        path = first_difference(expected, found)
        if path is not None:
            shown = (show(value_at(expected, path)), show(value_at(found, path)))
            self._diverge(self._divergence(kind, step, actor, what, path, *shown), fatal=False)


class ReplayDecider:
    """A :class:`~greenroom.decide.Decider` that serves a :class:`Replay`'s recorded steps.

    ``decide`` checks its context against the recorded one (see
    :class:`Replay` for the mode) and returns the recorded decisions, with
    the recorded model, tokens and fallbacks; a recorded failure is raised
    as a ``ModelError`` (``AllModelsFailed`` after fallbacks). When the
    calling actor is traced it records an ``llm`` span like any decider.

    Raises:
        ReplayDiverged: the context differs (mode ``"raise"``), or the actor
            asks for more steps than recorded.
        ModelError: the recorded step failed.
    """

    def __init__(self, replay: Replay) -> None:
        self._replay = replay

    @property
    def name(self) -> str:
        """``replay <trace id>``."""
        return f"replay {self._replay.trace_id}"

    async def decide(self, context: Context) -> DecisionResult:
        """The next recorded step of the calling actor."""
        replay = self._replay
        actor = _current_actor()
        step: RecordedStep = replay._next("decision", actor)  # type: ignore[assignment]
        if step.context is not None:
            replay._compare("decision", step.step, actor, "context", step.context, plain(context))
        tracer = current_tracer.get()
        if tracer is None:
            return _result(step)
        attributes: dict[str, object] = {
            genai.OPERATION_NAME: "chat",
            genai.PROVIDER_NAME: "replay",
            genai.REQUEST_MODEL: step.model,
            "greenroom.tools": list(context.tool_names()),
            CONTEXT: msgspec.to_builtins(context),
            "greenroom.replay": f"{replay.trace_id}/{step.step}",
        }
        with tracer.span("llm", step.name, attributes=attributes) as span:
            result = _result(step)
            span.attributes[genai.RESPONSE_MODEL] = result.model
            span.attributes[genai.DECISION] = step.decisions
        return result


def _result(step: RecordedStep) -> DecisionResult:
    if step.decisions is None:
        error = step.error or ErrorInfo(type="unknown", message="no decision")
        if step.failures:
            tried = (*step.failures, Failure(model=step.model, error=error))
            raise AllModelsFailed(step.name, tuple((f.model, f.error) for f in tried))
        raise ModelError(step.model, f"{error.type}: {error.message} (replayed)")
    usage = None
    if step.input_tokens is not None or step.output_tokens is not None:
        prompt, completion = step.input_tokens or 0, step.output_tokens or 0
        total = prompt + completion
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)
    return DecisionResult(
        decisions=msgspec.convert(step.decisions, _DECISIONS),
        model=step.model,
        usage=usage,
        failures=step.failures,
    )


class ReplayTools:
    """An ``Interceptor`` answering each tool call with a :class:`Replay`'s recorded output.

    Put it first in ``ToolAccess(interceptors=[...])``: the tool (and the
    interceptors after it) never run. The recorded output is decoded into
    the tool's ``Output``; a recorded error is raised as ``ToolFailed``
    naming the recorded error type and message.

    Raises:
        ReplayDiverged: another tool than recorded, more calls than recorded,
            an output that no longer decodes, or other arguments (mode ``"raise"``).
        ToolFailed: the recorded call failed.
    """

    def __init__(self, replay: Replay) -> None:
        self._replay = replay

    async def intercept(self, invocation: Invocation, proceed: Proceed) -> msgspec.Struct:
        """Answer ``invocation`` from the recording, without calling ``proceed``."""
        replay = self._replay
        actor = invocation.actor
        call: RecordedToolCall = replay._next("tool", actor)  # type: ignore[assignment]

        def diverge(what: str, expected: str, found: str) -> None:
            divergence = replay._divergence("tool", call.step, actor, what, "", expected, found)
            replay._diverge(divergence, fatal=True)

        if call.tool != invocation.tool:
            diverge("tool", show(call.tool), show(invocation.tool))
        replay._compare(
            "tool", call.step, actor, "arguments", call.arguments, plain(invocation.input)
        )
        if call.error is not None:
            # A ToolFailed again names the tool's own error, not "ToolFailed: tool failed: ...".
            nested = (
                _FAILED.match(call.error.message)
                if call.error.type.endswith("ToolFailed")
                else None
            )
            error_type, message = (
                nested.groups() if nested else (call.error.type, call.error.message)
            )
            raise ToolFailed(invocation.tool, error_type, f"{message} (replayed)")
        try:
            output: msgspec.Struct = msgspec.convert(call.result, invocation.output_type)
        except msgspec.ValidationError as error:
            diverge("output", show(call.result), f"{invocation.output_type.__qualname__}: {error}")
            raise  # unreachable: diverge raises
        return output
