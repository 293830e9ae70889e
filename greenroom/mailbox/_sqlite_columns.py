"""The columns of a stored row: what each may hold, and values made fit to store.

sqlite keeps whatever was written into a column, whatever its declared type,
so a row written by other code or damaged on disk can hold text in an integer
column, an id out of range, or text that is not UTF-8. :func:`problems` names
what is wrong with a message row (the row is then poison, see
``_sqlite_rows.read_row``); the ``*_or`` functions make a value fit the column
of a dead-letter row, which must always be writable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MAX_ATTEMPT",
    "MAX_ID",
    "InvalidText",
    "decode_text",
    "int_or",
    "is_int",
    "is_time",
    "opt_int",
    "opt_text",
    "problems",
    "real_or",
    "shown",
    "shown_value",
    "text",
]

MAX_ATTEMPT = 2**31 - 1
"""The largest ``attempt`` a stored row may hold; more is poison."""
MAX_ID = 2**63 - 1
"""The largest id sqlite can hold (ids are positive)."""


class InvalidText(str):
    """Text read from the database that is not UTF-8: shown with U+FFFD, the raw bytes kept.

    A ``str``, so code that only shows it keeps working; :func:`read_row`
    makes a message row holding one poison.
    """

    raw: bytes


def decode_text(data: bytes) -> str:
    """The connections' ``text_factory``: UTF-8, or an :class:`InvalidText`. Never raises.

    sqlite's default fails the whole query on one value that is not UTF-8,
    which would stop every fetch of the actor (and the commit around it).
    """
    try:
        return data.decode()
    except UnicodeDecodeError:
        text = InvalidText(data.decode(errors="replace"))
        text.raw = data
        return text


def problems(row: Sequence[Any]) -> list[str]:
    """What is wrong with the columns of a ``FETCH`` row, one phrase each (none: ``[]``).

    The body (``row[10]``) is left to the decoder. On the fetch path: the
    common case is one pass of type checks, the phrases are built only for
    a bad row.
    """
    _, ident, sender, reply_to, correlation_id, trace_id, parent, attempt, created, deadline, _ = (
        row[:11]
    )
    causation = row[11] if len(row) > 11 else None
    int_, str_, float_ = int, str, float
    if (
        (causation is None or (type(causation) is int_ and 0 < causation <= MAX_ID))
        and type(ident) is int_
        and 0 < ident <= MAX_ID
        and (sender is None or type(sender) is str_)
        and (reply_to is None or type(reply_to) is str_)
        and (correlation_id is None or type(correlation_id) is int_)
        and type(trace_id) is int_
        and 0 < trace_id <= MAX_ID
        and (parent is None or type(parent) is int_)
        and type(attempt) is int_
        and 0 < attempt <= MAX_ATTEMPT
        and type(created) is float_
        and -_FINITE < created < _FINITE
        and (deadline is None or (type(deadline) is float_ and -_FINITE < deadline < _FINITE))
    ):
        return []
    found = []
    for name, value, ok, expected in (
        ("id", ident, is_int(ident, 1, MAX_ID), "an integer from 1 to 2**63-1"),
        (
            "causation_id",
            causation,
            causation is None or is_int(causation, 1, MAX_ID),
            "an integer from 1 to 2**63-1 or NULL",
        ),
        ("sender", sender, _is_text(sender), "UTF-8 text or NULL"),
        ("reply_to", reply_to, _is_text(reply_to), "UTF-8 text or NULL"),
        ("correlation_id", correlation_id, _is_id(correlation_id), "an integer or NULL"),
        ("trace_id", trace_id, is_int(trace_id, 1, MAX_ID), "an integer from 1 to 2**63-1"),
        ("parent_span_id", parent, _is_id(parent), "an integer or NULL"),
        (
            "attempt",
            attempt,
            is_int(attempt, 1, MAX_ATTEMPT),
            f"an integer from 1 to {MAX_ATTEMPT}",
        ),
        ("created_at", created, is_time(created), "a finite number of seconds"),
        ("deadline", deadline, deadline is None or is_time(deadline), "seconds or NULL"),
    ):
        if not ok:
            found.append(f"column {name} holds {shown_value(value)}, expected {expected}")
    return found


_FINITE = float("inf")


def is_int(value: object, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _is_id(value: object) -> bool:
    return value is None or type(value) is int


def _is_text(value: object) -> bool:
    return value is None or type(value) is str


def is_time(value: object) -> bool:
    return type(value) in (int, float) and math.isfinite(value)  # type: ignore[arg-type]


def shown_value(value: object) -> str:
    """A stored value for an error message: its repr and type, or its raw bytes."""
    if isinstance(value, InvalidText):
        return f"text that is not UTF-8 ({value.raw[:60]!r})"
    return f"{shown(value)} ({type(value).__name__})"


def shown(value: object) -> str:
    """A short repr of ``value`` (an exception's text) for an error message. Never raises."""
    try:
        return f"{value!r:.80}" if not isinstance(value, Exception) else f"{value!s:.200}"
    except Exception:  # a repr that fails (or recurses) must not stop the row
        return "<no repr>"


def text(value: object) -> str:
    """``value`` as text sqlite can store: lone surrogates escaped, a non-str shown."""
    if not isinstance(value, str):
        return shown(value)
    exact = str.__str__(value)  # an exact str, for a subclass too
    try:
        exact.encode()
    except UnicodeEncodeError:
        return exact.encode(errors="backslashreplace").decode()
    return exact


def opt_text(value: object) -> str | None:
    return None if value is None else text(value)


def int_or(value: object, default: int) -> int:
    return value if is_int(value, -MAX_ID - 1, MAX_ID) else default  # type: ignore[return-value]


def opt_int(value: object) -> int | None:
    return value if is_int(value, -MAX_ID - 1, MAX_ID) else None  # type: ignore[return-value]


def real_or(value: object, default: Any) -> Any:
    return float(value) if is_time(value) else default  # type: ignore[arg-type]
