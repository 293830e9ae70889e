"""greenroom's own logger, redacted by default, and a patcher for applications.

Every greenroom module logs through :data:`logger`: loguru's logger with
:func:`redact_record` applied to each record (``logger.patch``), so a record
greenroom emits is redacted before any sink sees it, whatever sinks the
application configured and without it installing anything. greenroom never
configures loguru (no sinks, no global patcher) and stays disabled until the
application calls ``loguru.logger.enable("greenroom")``. A redacted record
has:

- its message with every known secret cut out (see ``greenroom.trace``);
- every ``extra`` value under a secret key (``api_key``, ``Authorization``,
  ...) replaced by ``[redacted]``, and secrets cut out of the others;
- its exception, when one is attached (``logger.opt(exception=...)``),
  formatted by the standard library (no local variables, which loguru's
  ``diagnose`` would show), redacted and appended to the message; the
  record's ``exception`` is then ``None``.

The logger an actor gets as ``self.ctx.logger`` is bound from this one, so
an application's handler logging through it is redacted too. One gap is
loguru's: a message logged with ``opt(colors=True)`` reaches a colorizing
sink from loguru's own copy, before any patcher; greenroom never logs so.

:func:`log_patcher` is for the application's own logger: it adds the trace
and span ids and redacts the same way.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from loguru import logger as _loguru_logger

from greenroom.trace._ids import current_span, format_id
from greenroom.trace._redact import REDACTED, is_secret_key, redact_text, redact_value

if TYPE_CHECKING:
    from loguru import Record

__all__ = ["log_patcher", "logger", "redact_record"]


def redact_record(record: Record) -> None:
    """Redact a loguru record in place: message, ``extra`` values and exception."""
    extra = record["extra"]
    for key, value in list(extra.items()):
        if is_secret_key(key):
            extra[key] = REDACTED
        elif type(value) is str:
            extra[key] = redact_text(value)
        elif not isinstance(value, int | float | bool | None):
            extra[key] = redact_value(value)
    message = record["message"]
    exception = record["exception"]
    if exception is not None:
        record["exception"] = None
        message = f"{message}\n{_format_exception(exception.type, exception.value)}"
    record["message"] = redact_text(message)


def _format_exception(kind: type[BaseException] | None, value: BaseException | None) -> str:
    try:
        if value is not None:
            return "".join(traceback.format_exception(value)).rstrip("\n")
        if kind is not None:
            return kind.__qualname__
    except Exception:  # a hostile __str__ must not lose the record
        return f"<unprintable {getattr(kind, '__qualname__', 'exception')}>"
    return ""


logger = _loguru_logger.patch(redact_record)
"""loguru's logger, redacting every record (see the module docstring)."""


def log_patcher(record: Record) -> None:
    """Add ``trace_id`` and ``span_id`` to a record's ``extra``, and redact it.

    Install it in the application (greenroom never configures loguru)::

        logger.configure(patcher=greenroom.trace.log_patcher)

    and show the ids with ``{extra[trace_id]}`` in a format. Outside any span
    both are ``""``. The ids are the 16-digit hex form :func:`format_id`
    gives, the same ``greenroom trace show`` takes. Secrets are cut out of
    the message, the ``extra`` values and an attached exception (see
    :func:`redact_record`). greenroom's own records are redacted without it.
    """
    span = current_span.get()
    redact_record(record)
    extra = record["extra"]
    if span is None:
        extra["trace_id"] = ""
        extra["span_id"] = ""
    else:
        extra["trace_id"] = format_id(span.trace_id)
        extra["span_id"] = format_id(span.span_id)
