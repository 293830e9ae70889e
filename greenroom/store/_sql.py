"""The SQL of the sqlite store, and the helpers that shape its parameters."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "MAX_PAIRS",
    "READ",
    "SCAN",
    "SCAN_ALL",
    "TABLE",
    "UPSERT",
    "padded_versions_query",
    "prefix_end",
]

TABLE = "greenroom_store_records"
READ = (
    f"SELECT version, value, updated_at, updated_by, trace_id FROM {TABLE} "
    "WHERE scope = ? AND key = ?"
)
UPSERT = (
    f"INSERT INTO {TABLE} (scope, key, version, value, updated_at, updated_by, trace_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (scope, key) DO UPDATE SET "
    "version = excluded.version, value = excluded.value, updated_at = excluded.updated_at, "
    "updated_by = excluded.updated_by, trace_id = excluded.trace_id"
)
SCAN = (
    f"SELECT key, version, value, updated_at, updated_by, trace_id FROM {TABLE} "
    "WHERE scope = ? AND key >= ? AND key < ? AND value IS NOT NULL ORDER BY key LIMIT ?"
)
SCAN_ALL = (
    f"SELECT key, version, value, updated_at, updated_by, trace_id FROM {TABLE} "
    "WHERE scope = ? AND key >= ? AND value IS NOT NULL ORDER BY key LIMIT ?"
)
MAX_PAIRS = 256  # (scope, key) pairs per versions query: 512 parameters


def _versions_sql(pairs: int) -> str:
    # CROSS JOIN keeps the VALUES list as the outer loop, so each pair is one
    # primary-key lookup (a row-value IN over VALUES scans the whole table).
    return (
        f"SELECT r.scope, r.key, r.version, r.value IS NOT NULL "
        f"FROM (VALUES {', '.join(['(?, ?)'] * pairs)}) AS v "
        f"CROSS JOIN {TABLE} AS r ON r.scope = v.column1 AND r.key = v.column2"
    )


# Padding every versions query to a power of two keeps the set of distinct
# SQL texts small, so sqlite3's statement cache is hit instead of re-preparing.
_VERSIONS_SQL = {1 << n: _versions_sql(1 << n) for n in range(9)}


def padded_versions_query(pairs: Sequence[tuple[str, str]]) -> tuple[str, list[str]]:
    size = 1
    while size < len(pairs):
        size <<= 1
    params: list[str] = []
    for scope, key in pairs:
        params += (scope, key)
    params += pairs[-1] * (size - len(pairs))
    return _VERSIONS_SQL[size], params


def prefix_end(prefix: str) -> str | None:
    """The smallest str greater than every str starting with ``prefix`` (None: no bound)."""
    chars = list(prefix)
    while chars and ord(chars[-1]) == 0x10FFFF:
        chars.pop()
    if not chars:
        return None
    code = ord(chars[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:  # surrogates do not encode to UTF-8
        code = 0xE000
    chars[-1] = chr(code)
    return "".join(chars)
