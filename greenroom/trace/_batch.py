"""Message spans written as one JSON batch: one statement, one parameter, no Python per row.

``executemany`` binds every row in Python, holding the GIL, and hands the GIL
back and forth with the event loop's thread once per row; under a burst of
messages that costs the actors more than recording the spans did. Here a
batch of :class:`MessageRow` is encoded by msgspec (in C) into one JSON array
and inserted by one ``INSERT ... SELECT ... FROM json_each(?)``, which SQLite
runs with the GIL released.

Floats cross as text here, so the path is used only where this SQLite parses
back the exact doubles msgspec wrote (:func:`json_batch_supported`, checked
once when a store opens); elsewhere the store falls back to ``executemany``.
"""

from __future__ import annotations

import sqlite3
import struct
import time
from collections.abc import Sequence
from typing import Final, cast

import aiosqlite
import msgspec

from greenroom.trace._schema import COLUMNS
from greenroom.trace._tracer import MessageRow, RawSpan

__all__ = ["INSERT_MESSAGE_ROWS", "encode_message_rows", "json_batch_supported", "split_entries"]

# Columns in COLUMNS order; a MessageRow is [span, trace, parent, name, actor, start, end].
INSERT_MESSAGE_ROWS: Final = (
    f"INSERT OR REPLACE INTO greenroom_spans ({COLUMNS}) "
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]'), 'message', json_extract(value, '$[3]'), "
    "json_extract(value, '$[4]'), json_extract(value, '$[5]'), json_extract(value, '$[6]'), "
    "'ok', NULL, NULL, NULL FROM json_each(CAST(? AS TEXT))"
)
"""Insert a batch of message rows given as the JSON array :func:`encode_message_rows` makes."""

_READ_BACK: Final = (
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[3]'), "
    "json_extract(value, '$[5]'), json_extract(value, '$[6]') FROM json_each(CAST(? AS TEXT))"
)

encode_message_rows = msgspec.json.Encoder().encode
"""A list of :class:`MessageRow` as JSON bytes, for :data:`INSERT_MESSAGE_ROWS`."""


def split_entries(
    entries: list[MessageRow | RawSpan],
) -> tuple[list[MessageRow], list[RawSpan]]:
    """Buffered entries as (message rows, other spans), each in recording order.

    A batch of message rows only (the common case) is returned as it is,
    checked in C.
    """
    if set(map(type, entries)) <= {MessageRow}:
        return cast(list[MessageRow], entries), []
    rows = [entry for entry in entries if type(entry) is MessageRow]
    others = [entry for entry in entries if type(entry) is not MessageRow]
    return rows, cast(list[RawSpan], others)


def _probe_rows() -> list[MessageRow]:
    # Timestamps like the ones spans carry (now, and microseconds around it), plus
    # doubles of every magnitude and last bit: a SQLite whose text-to-double
    # conversion is off by one unit anywhere shows it here.
    now = time.time()
    values = [now + i * 1.1e-6 for i in range(512)]
    values += [now * (1 + i * 1e-9) for i in range(512)]
    bits = 0x3FF0_0000_0000_0001
    for _ in range(1024):
        bits = (bits * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
        value = struct.unpack("<d", struct.pack("<Q", bits & 0x7FEF_FFFF_FFFF_FFFF))[0]
        values.append(value)
    pairs = zip(values[::2], values[1::2], strict=True)
    return [
        MessageRow((1 << 62) + i, i + 1, None, 'Probe \u00e9"\\', "probe", start, end)
        for i, (start, end) in enumerate(pairs)
    ]


async def json_batch_supported(db: aiosqlite.Connection) -> bool:
    """Whether ``db`` writes a JSON batch of message rows exactly as ``executemany`` would.

    False when SQLite lacks the JSON functions or turns a double written as
    text into a different double.
    """
    rows = _probe_rows()
    try:
        got: Sequence[sqlite3.Row] = list(
            await db.execute_fetchall(_READ_BACK, (encode_message_rows(rows),))
        )
    except (sqlite3.Error, ValueError):
        return False
    expected = [(row.span_id, row.name, row.start, row.end) for row in rows]
    return [tuple(row) for row in got] == expected
