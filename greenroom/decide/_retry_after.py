"""The one parser of a rate-limited server's requested wait (``Retry-After``, ``retry-after-ms``).

A header that does not parse counts as absent: a hostile or broken server can
make greenroom wait at most :data:`MAX_RETRY_AFTER`, never forever and never
"until NaN".
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from collections.abc import Callable, Mapping

__all__ = ["MAX_RETRY_AFTER", "parse_retry_after", "retry_after"]

MAX_RETRY_AFTER = 3600.0
"""The longest wait, in seconds, a ``Retry-After`` can ask for; a longer one is cut to this."""

# delta-seconds (RFC 9110 §10.2.3) is 1*DIGIT; a fraction is tolerated (some servers send one).
_SECONDS = re.compile(r"[0-9]{1,15}(?:\.[0-9]{1,9})?")
# an HTTP-date: letters, digits, spaces, commas, colons, signs; nothing else, and short.
_DATE = re.compile(r"[A-Za-z0-9 ,:+\-]{1,64}")


def parse_retry_after(
    value: str | None, *, scale: float = 1.0, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds to wait that ``value`` (one header's text) asks for, or ``None``.

    ``value`` is delta-seconds (``"120"``, ``"1.5"``) or, when ``scale`` is
    1.0, an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``; a date without a
    zone is read as UTC, a date in the past means 0.0). ``scale`` converts
    the number to seconds (``0.001`` for ``retry-after-ms``). The result is
    finite, at least 0.0 and at most :data:`MAX_RETRY_AFTER`.

    Returns ``None`` for a missing value and for anything else: NaN,
    infinities, negative numbers, exponents, garbage, an impossible date.
    Never raises.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return _bounded(float(text) * scale)
    if scale != 1.0 or not _DATE.fullmatch(text):
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - now()
    except Exception:  # any malformed date; the parser is total by contract
        return None
    return _bounded(max(seconds, 0.0))


def retry_after(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds a 429 asks to wait: ``retry-after-ms`` if valid, else ``retry-after``.

    ``headers`` is case-insensitive when it is an ``httpx.Headers``; a plain
    mapping is looked up in lower case. See :func:`parse_retry_after` for
    what counts as valid. Never raises.
    """
    millis = parse_retry_after(headers.get("retry-after-ms"), scale=0.001, now=now)
    if millis is not None:
        return millis
    return parse_retry_after(headers.get("retry-after"), now=now)


def _bounded(seconds: float) -> float | None:
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)
