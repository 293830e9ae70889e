"""Log records that name their trace: a loguru patcher for applications to install."""

from __future__ import annotations

from typing import TYPE_CHECKING

from greenroom.trace._ids import current_span, format_id
from greenroom.trace._redact import REDACTED, is_secret_key, redact_text, redact_value

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["log_patcher"]


def log_patcher(record: Record) -> None:
    """Add ``trace_id`` and ``span_id`` to a record's ``extra``, and redact it.

    Install it in the application (greenroom never configures loguru)::

        logger.configure(patcher=greenroom.trace.log_patcher)

    and show the ids with ``{extra[trace_id]}`` in a format. Outside any span
    both are ``""``. The ids are the 16-digit hex form :func:`format_id`
    gives, the same ``greenroom trace show`` takes. Secrets are cut out of
    the message and the ``extra`` values (see :class:`Secret`).
    """
    span = current_span.get()
    extra = record["extra"]
    for key, value in list(extra.items()):
        if is_secret_key(key):
            extra[key] = REDACTED
        elif not isinstance(value, int | float | bool | None):
            extra[key] = redact_value(value)
    if span is None:
        extra["trace_id"] = ""
        extra["span_id"] = ""
    else:
        extra["trace_id"] = format_id(span.trace_id)
        extra["span_id"] = format_id(span.span_id)
    record["message"] = redact_text(record["message"])
