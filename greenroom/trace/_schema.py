"""The trace store's schema, as numbered migrations recorded in the database.

Rules: a migration, once released, is never edited; a change is a new
migration with the next number. The store refuses a database whose schema is
newer than the migrations it knows.
"""

from __future__ import annotations

import time

import aiosqlite
import anyio

__all__ = ["COLUMNS", "MIGRATIONS", "SCHEMA_TABLE", "SchemaTooNew", "migrate"]

SCHEMA_TABLE = "greenroom_trace_schema"

COLUMNS = (
    "span_id, trace_id, parent_id, kind, name, actor, start_at, end_at, "
    "status, tokens, attributes, error"
)
"""The columns of ``greenroom_spans`` in the order rows are written and read."""

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            """
            CREATE TABLE greenroom_spans (
                span_id INTEGER PRIMARY KEY,
                trace_id INTEGER NOT NULL,
                parent_id INTEGER,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                actor TEXT,
                start_at REAL NOT NULL,   -- seconds since the epoch
                end_at REAL NOT NULL,
                status TEXT NOT NULL,     -- 'ok' or 'error'
                tokens INTEGER,           -- gen_ai.usage input + output tokens, if any
                attributes TEXT,          -- JSON object, redacted; NULL when empty
                error TEXT                -- JSON ErrorInfo, redacted; NULL when ok
            )
            """,
            "CREATE INDEX greenroom_spans_trace ON greenroom_spans (trace_id)",
            "CREATE INDEX greenroom_spans_start ON greenroom_spans (start_at)",
            "CREATE INDEX greenroom_spans_roots ON greenroom_spans (start_at) "
            "WHERE parent_id IS NULL",
        ),
    ),
)


class SchemaTooNew(Exception):
    """The database was written by a newer greenroom (translated by the store)."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(found, known)
        self.found = found
        self.known = known


async def migrate(db: aiosqlite.Connection) -> int:
    """Apply the migrations the database lacks, in one transaction; return its schema version.

    ``db`` is in autocommit mode (``isolation_level=None``). Raises
    :class:`SchemaTooNew` when the database is newer than :data:`MIGRATIONS`.
    """
    await db.execute(
        f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} "
        "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    await db.execute("BEGIN IMMEDIATE")
    try:
        rows = list(await db.execute_fetchall(f"SELECT max(version) FROM {SCHEMA_TABLE}"))
        current = int(rows[0][0] or 0)
        known = MIGRATIONS[-1][0]
        if current > known:
            raise SchemaTooNew(current, known)
        for number, statements in MIGRATIONS:
            if number > current:
                for sql in statements:
                    await db.execute(sql)
                await db.execute(
                    f"INSERT INTO {SCHEMA_TABLE} (version, applied_at) VALUES (?, ?)",
                    (number, time.time()),
                )
                current = number
        await db.execute("COMMIT")
    except BaseException:
        with anyio.CancelScope(shield=True):
            await db.execute("ROLLBACK")
        raise
    return current
