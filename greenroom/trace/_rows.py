"""Spans as rows of ``greenroom_spans`` and back; redaction happens on the way in."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, cast

import msgspec

from greenroom._errors import ErrorInfo
from greenroom._stored import quote, stored_int, stored_text, stored_time
from greenroom.trace._redact import redact_text
from greenroom.trace._span import Span
from greenroom.trace._tracer import (
    MessageRow,
    RawSpan,
    describe_error,
    redact_attributes,
)

__all__ = [
    "INPUT_TOKENS",
    "OUTPUT_TOKENS",
    "UNREADABLE",
    "Row",
    "row_of_message",
    "row_of_raw",
    "row_of_span",
    "rows_of_entries",
    "rows_of_raw",
    "span_of_row",
    "span_of_stored_row",
    "tokens_of",
]

INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"

Row = tuple[
    int,  # span_id
    int,  # trace_id
    int | None,  # parent_id
    str,  # kind
    str,  # name
    str | None,  # actor
    float,  # start_at
    float,  # end_at
    str,  # status
    int | None,  # tokens
    str | None,  # attributes (JSON)
    str | None,  # error (JSON)
]

_encode = msgspec.json.Encoder(enc_hook=str).encode
_decode_attributes = msgspec.json.Decoder(dict[str, Any]).decode
_decode_error = msgspec.json.Decoder(ErrorInfo).decode


def tokens_of(attributes: dict[str, object]) -> int | None:
    """Input plus output tokens named by the GenAI attributes, ``None`` if neither is there.

    Cached-token counts (``gen_ai.usage.cache_read.input_tokens``) are part of
    the input count already, so they are not added again.
    """
    total: int | None = None
    for key in (INPUT_TOKENS, OUTPUT_TOKENS):
        value = attributes.get(key)
        if type(value) is int:
            total = (total or 0) + value
    return total


def row_of_raw(raw: RawSpan) -> Row:
    """A buffered span as a row, redacted. The common case (no attributes, no error) is fast."""
    trace_id, span_id, parent_id, kind, name, actor, start, end, error, attributes = raw
    text = name.__qualname__ if type(name) is not str else redact_text(name)  # type: ignore[union-attr]
    if error is None and not attributes:
        return (span_id, trace_id, parent_id, kind, text, actor, start, end, "ok", None, None, None)
    attrs = redact_attributes(attributes)
    info = describe_error(error)
    return (
        span_id,
        trace_id,
        parent_id,
        kind,
        text,
        actor,
        start,
        end,
        "ok" if info is None else "error",
        tokens_of(attrs),
        _encode(attrs).decode() if attrs else None,
        None if info is None else _encode(info).decode(),
    )


def row_of_span(span: Span) -> Row:
    """A span as a row, redacted (again: redaction is idempotent)."""
    return row_of_raw(
        (
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
    )


def span_of_row(row: Sequence[Any]) -> Span:
    """A row read back (columns in ``COLUMNS`` order) as a :class:`Span`."""
    span_id, trace_id, parent_id, kind, name, actor, start, end, status, _, attrs, error = row
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        kind=kind,
        name=name,
        actor=actor,
        start=start,
        end=end,
        status="error" if status == "error" else "ok",
        attributes=_decode_attributes(attrs) if attrs else {},
        error=_decode_error(error) if error else None,
    )


UNREADABLE: Final = "greenroom.unreadable"
"""The attribute of a span read back whose row held values that could not be read as
stored: one line per column, saying what was found (the span shows neutral values there)."""


def _stored_json(value: object) -> tuple[Any, str | None]:
    """A JSON column as read: the value, or ``None`` and why it cannot be read."""
    try:
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        return msgspec.json.decode(data), None
    except Exception as error:  # a decode boundary: RecursionError, UnicodeDecodeError, ...
        return None, f"{type(error).__name__}: {error}"


def span_of_stored_row(row: Sequence[object]) -> Span:
    """A row read back from a database (columns in ``COLUMNS`` order) as a :class:`Span`.

    Total: whatever the row holds (values of the wrong type, text that is
    not UTF-8, attributes or an error that are not JSON or are nested too
    deep, times no calendar can show), the result is a span. Values that
    cannot be read are replaced with neutral ones and described under the
    :data:`UNREADABLE` attribute; an error that cannot be read becomes an
    ``ErrorInfo`` of type ``"greenroom.UnreadableError"``. Never raises.
    """
    problems: list[str] = []
    cells = list(row) + [None] * max(0, 12 - len(row))
    span_id, trace_id, parent_id, kind, name, actor, start, end, status, _, attrs, error = cells[
        :12
    ]
    attributes: dict[str, Any] = {}
    if attrs is not None:
        decoded, why = _stored_json(attrs)
        if isinstance(decoded, dict):
            attributes = decoded
        else:
            why = why or f"expected a JSON object, found {type(decoded).__name__}"
            problems.append(f"attributes: {why}; stored: {quote(attrs)}")
    info: ErrorInfo | None = None
    if error is not None:
        decoded, why = _stored_json(error)
        try:
            info = None if why else msgspec.convert(decoded, ErrorInfo)
        except Exception as exc:  # a decode boundary
            why = f"{type(exc).__name__}: {exc}"
        if info is None:
            info = ErrorInfo(
                type="greenroom.UnreadableError",
                message=f"the stored error cannot be read ({why}): {quote(error)}",
            )
    span = Span(
        trace_id=stored_int(trace_id, "trace_id", problems) or 0,
        span_id=stored_int(span_id, "span_id", problems) or 0,
        parent_id=stored_int(parent_id, "parent_id", problems, null=True),
        kind=stored_text(kind, "kind", problems),
        name=stored_text(name, "name", problems),
        actor=None if actor is None else stored_text(actor, "actor", problems),
        start=stored_time(start, "start_at", problems),
        end=stored_time(end, "end_at", problems),
        status="error" if status in ("error", b"error") or info is not None else "ok",
        attributes=attributes,
        error=info,
    )
    if problems:
        span.attributes = {**span.attributes, UNREADABLE: problems}
    return span


def rows_of_raw(raws: Iterable[RawSpan]) -> list[Row]:
    """Many buffered spans as rows."""
    return [row_of_raw(raw) for raw in raws]


def rows_of_entries(entries: Iterable[MessageRow | RawSpan]) -> list[Row]:
    """Buffered entries as rows, redacted."""
    return [
        row_of_message(entry) if type(entry) is MessageRow else row_of_raw(cast(RawSpan, entry))
        for entry in entries
    ]


def row_of_message(row: MessageRow) -> Row:
    """A :class:`MessageRow` as a row of ``greenroom_spans``."""
    return (
        row.span_id,
        row.trace_id,
        row.parent_id,
        "message",
        row.name,
        row.actor,
        row.start,
        row.end,
        "ok",
        None,
        None,
        None,
    )
