"""Values read back from a database or a stream, decoded totally (mailbox, trace, CLI).

Each function takes what sqlite3 (text selected as bytes) or Redis gave for
one column or field, and returns the value it should hold, or a neutral
one (``""``, 0, ``None``) after adding a line to ``problems`` that names
the column and quotes what was found. None of them raises.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Final

import msgspec

__all__ = ["quote", "stored_body", "stored_int", "stored_text", "stored_time"]

_decode = msgspec.msgpack.Decoder().decode
_SHOWN: Final = 120  # characters of an unreadable stored value quoted in a problem


def quote(value: object) -> str:
    """``repr(value)``, cut to 120 characters: how a problem quotes what it found."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def stored_text(value: object, column: str, problems: list[str], *, null: bool = False) -> Any:
    """A text column read as bytes (or str): its text.

    Bytes that are not UTF-8 are decoded with ``\\xNN`` escapes, another
    type is shown as its ``str`` (``""`` for a missing value), each with a
    problem; ``null`` lets ``None`` through.
    """
    if value is None and null:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            problems.append(f"{column}: not UTF-8 text: {quote(value)}")
            return value.decode("utf-8", "backslashreplace")
    problems.append(f"{column}: expected text, found {type(value).__name__} {quote(value)}")
    return "" if value is None else str(value)


def stored_int(value: object, column: str, problems: list[str], *, null: bool = False) -> Any:
    """An integer column: the int, else 0 (``None`` with ``null``) and a problem."""
    if type(value) is int or (value is None and null):
        return value
    problems.append(f"{column}: expected an integer, found {type(value).__name__} {quote(value)}")
    return None if null else 0


def stored_time(value: object, column: str, problems: list[str], *, null: bool = False) -> Any:
    """A time column (seconds since the epoch): a finite number a calendar can show, as a float.

    Anything else (text, NaN, a year past 9999) gives ``0.0`` (``None`` with
    ``null``) and a problem.
    """
    if (type(value) is int or type(value) is float) and math.isfinite(value):
        try:
            dt.datetime.fromtimestamp(value)
        except (OverflowError, OSError, ValueError):
            pass
        else:
            return float(value)
    if value is None and null:
        return None
    problems.append(f"{column}: expected a time, found {type(value).__name__} {quote(value)}")
    return None if null else 0.0


def stored_body(data: object, problems: list[str]) -> object:
    """A body column: the msgpack decoded without types, or the bytes when that fails.

    Bytes that do not decode (not msgpack, text that is not UTF-8, nesting
    too deep, unhashable keys) are the body as they are: a poison message,
    not a problem of the row. Anything but bytes gives ``b""`` and a problem.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    if not isinstance(data, bytes):
        problems.append(f"body: expected bytes, found {type(data).__name__} {quote(data)}")
        return b""
    try:
        return _decode(data)
    except Exception:  # a decode boundary: not msgpack, not UTF-8, too deep, unhashable keys
        return data
