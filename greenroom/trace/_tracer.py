"""The tracer: where spans are recorded, cheaply, to be written later.

The hot path (an actor handling a message) appends one :class:`MessageRow`
to a bounded deque: no lookups, no formatting, no I/O. Other spans go through
:meth:`Tracer.record`; names given as types are turned into text, errors into
:class:`ErrorInfo` and attributes redacted only when the buffer is drained,
off the hot path, by a trace store (:class:`SqliteTraceStore`) or
:meth:`Tracer.drain`.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from itertools import repeat, starmap
from types import TracebackType
from typing import Final, Protocol, cast

import msgspec

from greenroom._errors import ErrorInfo, UsageError
from greenroom.trace._ids import SpanCarrier, attempt_span_id, current_span, new_id
from greenroom.trace._redact import redact_text, redact_value
from greenroom.trace._span import Span

__all__ = [
    "RawSpan",
    "current_tracer",
    "SpanScope",
    "Tracer",
    "TracerStatistics",
    "MessageRow",
    "describe_error",
    "expand_entry",
    "name_of",
    "redact_attributes",
    "to_span",
]

DEFAULT_CAPACITY: Final = 65_536

current_tracer: ContextVar[Tracer | None] = ContextVar("greenroom_current_tracer", default=None)
"""The tracer of the runtime whose actor is running (``None``: not traced).

Set by the runtime in every actor task, so code a handler calls (tools,
deciders, the store) records its spans without being handed a tracer.
"""

RawSpan = tuple[
    int,  # trace_id
    int,  # span_id
    int | None,  # parent_id
    str,  # kind
    "str | type",  # name (a type is named by its __qualname__ when drained)
    str | None,  # actor
    float,  # start
    float,  # end
    "ErrorInfo | BaseException | None",  # error
    "Mapping[str, object] | None",  # attributes
]
"""What :meth:`Tracer.record` buffers: the arguments, unconverted."""

_time = time.time


class MessageRow(msgspec.Struct, array_like=True, gc=False):
    """The span of a message handled without error, as the actor loop buffers it.

    Made positionally on the hot path (``MessageRow(span_id, trace_id,
    parent_id, name, actor, start, end)``, see :meth:`Tracer.message_rows`);
    kind ``"message"``, status ``"ok"`` and no attributes, tokens or error
    are implied. Untracked by the garbage collector (it holds only ints,
    text and floats), so a buffer full of rows costs collections nothing,
    and encoded by msgspec as a JSON array, so a trace store writes a batch
    of them with no Python code per row. Times are wall-clock seconds.
    """

    span_id: int
    trace_id: int
    parent_id: int | None
    name: str
    actor: str
    start: float
    end: float


class TracerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of a :class:`Tracer` since it was made.

    ``buffered``: spans waiting to be drained; ``capacity``: the most it
    holds; ``drained``: spans taken out by :meth:`Tracer.drain` or a store;
    ``dropped``: spans discarded, oldest first, because the buffer was full.
    """

    buffered: int
    capacity: int
    drained: int
    dropped: int


class Tracer:
    """A bounded, in-memory recorder of finished spans.

    Recording never blocks and never raises: when the buffer is full the
    *oldest* span is discarded to make room and counted in
    :meth:`statistics` as ``dropped``. Spans leave the buffer in recording
    order through :meth:`drain` (or a trace store that drains it). A tracer
    belongs to one event loop; recording from other threads is safe but may
    miscount drops.

    ``capacity`` (spans, default 65,536) bounds memory: about 150 bytes per
    buffered message span, more for spans with attributes.
    """

    __slots__ = ("_appended", "_buffer", "_capacity", "_drained")

    def __init__(self, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if type(capacity) is not int or capacity < 1:
            raise UsageError(f"Tracer capacity is a number of spans >= 1, got {capacity!r}")
        self._capacity = capacity
        self._buffer: deque[MessageRow | RawSpan] = deque(maxlen=capacity)
        self._drained = 0
        self._appended = 0  # entries appended (message_rows() tells its count in bulk)

    def __repr__(self) -> str:
        dropped = self.statistics().dropped
        return f"<Tracer {len(self._buffer)}/{self._capacity} buffered, {dropped} dropped>"

    # -- the hot path ---------------------------------------------------------

    def record(
        self,
        trace_id: int,
        span_id: int,
        parent_id: int | None,
        kind: str,
        name: str | type,
        actor: str | None,
        start: float,
        end: float,
        error: ErrorInfo | BaseException | None = None,
        attributes: Mapping[str, object] | None = None,
    ) -> None:
        """Record a finished span. O(1); never blocks, never raises.

        Pass arguments positionally on hot paths. ``name`` may be a type (a
        message's class): it is named by its ``__qualname__`` when drained,
        so the hot path formats nothing. ``error`` may be the exception
        itself; it is described (with its traceback) when drained, so it is
        kept alive until then. ``attributes`` is kept by reference: do not
        change it afterwards. Secrets in it are redacted when drained.
        """
        buffer = self._buffer
        self._appended += 1
        buffer.append(
            (trace_id, span_id, parent_id, kind, name, actor, start, end, error, attributes)
        )

    def record_message(
        self,
        envelope: _Delivered,
        attempt: int,
        actor: str,
        start: float,
        end: float,
        error: BaseException | None = None,
    ) -> None:
        """Record the span of handling one delivery of a message.

        The ids and the body's type name are read from ``envelope`` now (it
        is not kept); ``attempt`` is passed because a retry changes the
        envelope's attempt. O(1); never blocks or raises. The actor loop
        appends the :class:`MessageRow` itself (:meth:`message_rows`).
        """
        message_id = envelope.id
        span_id = message_id if attempt == 1 else attempt_span_id(message_id, attempt)
        if error is not None:
            self.record(
                envelope.trace_id,
                span_id,
                envelope.parent_span_id,
                "message",
                type(envelope.body).__qualname__,
                actor,
                start,
                end,
                error,
            )
            return
        self._appended += 1
        self._buffer.append(
            MessageRow(
                span_id,
                envelope.trace_id,
                envelope.parent_span_id,
                type(envelope.body).__qualname__,
                actor,
                start,
                end,
            )
        )

    # -- spans for code off the hot path -------------------------------------

    def span(
        self,
        kind: str,
        name: str,
        *,
        actor: str | None = None,
        attributes: Mapping[str, object] | None = None,
        **attrs: object,
    ) -> SpanScope:
        """A span around a block: ``with tracer.span("tool", "search", query=q) as s: ...``.

        The span is a child of :data:`current_span` (or the root of a new
        trace) and is the current span inside the block, so messages sent
        and spans opened there are its children. ``actor`` defaults to the
        enclosing span's actor. Set more attributes on ``s.attributes``. An
        exception leaving the block (cancellation too) marks the span as an
        error with that exception's description, and propagates unchanged.
        """
        merged: dict[str, object] = dict(attributes) if attributes else {}
        if attrs:
            merged.update(attrs)
        return SpanScope(self, kind, name, actor, merged)

    def add(self, span: Span) -> None:
        """Record a finished :class:`Span` made elsewhere. O(1); never raises."""
        self.record(
            span.trace_id,
            span.span_id,
            span.parent_id,
            span.kind,
            span.name,
            span.actor,
            span.start,
            span.end,
            span.error,
            span.attributes,
        )

    # -- draining ------------------------------------------------------------

    def drain_entries(self, limit: int | None = None) -> list[MessageRow | RawSpan]:
        """Take up to ``limit`` buffered entries as stored (message spans as :class:`MessageRow`).

        For trace stores that turn entries into rows directly; see
        :func:`expand_entry` for the :data:`RawSpan` of one. Taking all of
        them is a bulk copy, with no Python code per entry.
        """
        buffer = self._buffer
        if limit is None or limit >= len(buffer):
            taken = list(buffer)
            buffer.clear()
        else:
            taken = list(starmap(buffer.popleft, repeat((), limit)))
        self._drained += len(taken)
        return taken

    def drain_raw(self, limit: int | None = None) -> list[RawSpan]:
        """Take up to ``limit`` buffered spans (all if ``None``), oldest first, as recorded.

        For trace stores: convert each with :func:`to_span` (or their own
        row builder, which must redact the same way).
        """
        buffer = self._buffer
        n = len(buffer) if limit is None else min(limit, len(buffer))
        pop = buffer.popleft
        taken = [expand_entry(pop()) for _ in range(n)]
        self._drained += n
        return taken

    def drain(self, limit: int | None = None) -> list[Span]:
        """Take up to ``limit`` buffered spans, oldest first, redacted, as :class:`Span`."""
        return [to_span(raw) for raw in self.drain_raw(limit)]

    def message_rows(self) -> tuple[Callable[[MessageRow], None], Callable[[int], None]]:
        """The hottest path, for the actor loop: ``(append, appended)``.

        ``append(row)`` buffers a :class:`MessageRow` (a message handled
        without error) with no Python frame in between; ``appended(n)`` tells
        how many rows were appended, in bulk (the actor loop tells every
        ``throughput`` messages and when it goes idle), so that the count of
        drops in :meth:`statistics` stays right.
        """
        return self._buffer.append, self._count_appended

    def _count_appended(self, n: int) -> None:
        self._appended += n

    def statistics(self) -> TracerStatistics:
        """A snapshot of the counters."""
        return TracerStatistics(
            buffered=len(self._buffer),
            capacity=self._capacity,
            drained=self._drained,
            # what was appended and is neither drained nor buffered was evicted
            dropped=max(0, self._appended - self._drained - len(self._buffer)),
        )


class SpanScope:
    """The context manager :meth:`Tracer.span` returns; enter it once."""

    __slots__ = ("_span", "_token", "_tracer")

    def __init__(
        self,
        tracer: Tracer,
        kind: str,
        name: str,
        actor: str | None,
        attributes: dict[str, object],
    ) -> None:
        self._tracer = tracer
        parent: SpanCarrier | None = current_span.get()
        span_id = new_id()
        if parent is None:
            trace_id, parent_id = span_id, None
        else:
            trace_id, parent_id = parent.trace_id, parent.span_id
            if actor is None:
                actor = _actor_of(parent)
        now = _time()
        self._span = Span(
            trace_id=trace_id,
            span_id=span_id,
            parent_id=parent_id,
            kind=kind,
            name=name,
            actor=actor,
            start=now,
            end=now,
            attributes=attributes,
        )
        self._token: object = None

    def __enter__(self) -> Span:
        if self._token is not None:
            raise UsageError("a tracer.span(...) block was entered twice; make a new one")
        self._span.start = _time()
        self._token = current_span.set(self._span)
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        span.end = _time()
        # Exited in another context than it was entered (a generator moved
        # between tasks): there is nothing to restore there.
        with contextlib.suppress(ValueError):
            current_span.reset(self._token)  # type: ignore[arg-type]
        if exc is not None:
            span.status = "error"
            span.error = ErrorInfo.from_exception(exc)
        self._tracer.add(span)


def _actor_of(parent: SpanCarrier) -> str | None:
    # An envelope names its actor `recipient`, a span `actor`.
    actor = getattr(parent, "actor", None)
    if actor is None:
        actor = getattr(parent, "recipient", None)
    return actor if isinstance(actor, str) else None


def describe_error(error: ErrorInfo | BaseException | None) -> ErrorInfo | None:
    """``error`` as redacted :class:`ErrorInfo` (an exception with its traceback)."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        try:
            error = ErrorInfo.from_exception(error)
        except Exception:
            error = ErrorInfo(type=type(error).__qualname__, message="<unprintable>")
    return ErrorInfo(
        type=error.type,
        message=redact_text(error.message),
        traceback=None if error.traceback is None else redact_text(error.traceback),
    )


def redact_attributes(attributes: Mapping[str, object] | None) -> dict[str, object]:
    """``attributes`` as plain data with every secret replaced (see ``_redact``)."""
    if not attributes:
        return {}
    out = redact_value(attributes)
    return out if isinstance(out, dict) else {}


def name_of(name: str | type) -> str:
    """A span name from the text or type given to :meth:`Tracer.record`."""
    if isinstance(name, str):
        return redact_text(name)
    return getattr(name, "__qualname__", None) or str(name)


class _Delivered(Protocol):
    """What :meth:`Tracer.record_message` reads from an envelope, when drained."""

    @property
    def id(self) -> int: ...

    @property
    def trace_id(self) -> int: ...

    @property
    def parent_span_id(self) -> int | None: ...

    @property
    def body(self) -> object: ...


def expand_entry(raw: MessageRow | RawSpan) -> RawSpan:
    """A buffered entry as the 10-tuple of :meth:`Tracer.record`."""
    if type(raw) is not MessageRow:
        return cast(RawSpan, raw)
    row = raw
    return (
        row.trace_id,
        row.span_id,
        row.parent_id,
        "message",
        row.name,
        row.actor,
        row.start,
        row.end,
        None,
        None,
    )


def to_span(raw: RawSpan) -> Span:
    """A buffered span as a redacted :class:`Span`."""
    trace_id, span_id, parent_id, kind, name, actor, start, end, error, attributes = raw
    info = describe_error(error)
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        kind=kind,
        name=name_of(name),
        actor=actor,
        start=start,
        end=end,
        status="ok" if info is None else "error",
        attributes=redact_attributes(attributes),
        error=info,
    )
