"""The trace store's schema, as numbered migrations recorded in the database.

Rules: a migration, once released, is never edited; a change is a new
migration with the next number. The store refuses a database whose schema is
newer than the migrations it knows.
"""

from __future__ import annotations

import aiosqlite

from greenroom._migrate import SchemaTooNew
from greenroom._migrate import migrate as _migrate

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


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring ``db`` to this schema's latest version; see :func:`greenroom._migrate.migrate`.

    Raises :class:`SchemaTooNew` when the database is newer than :data:`MIGRATIONS`.
    """
    return await _migrate(db, SCHEMA_TABLE, MIGRATIONS)
