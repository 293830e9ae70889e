"""The sqlite store's schema, as numbered migrations recorded in the database.

Rules: a migration, once released, is never edited; a change is a new
migration with the next number. The store refuses a database whose schema
is newer than the migrations it knows, rather than guess.
"""

from __future__ import annotations

import aiosqlite

from greenroom._migrate import SchemaTooNew
from greenroom._migrate import migrate as _migrate

__all__ = ["MIGRATIONS", "SCHEMA_TABLE", "SchemaTooNew", "migrate"]

SCHEMA_TABLE = "greenroom_store_schema"

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE greenroom_store_records (
            scope TEXT NOT NULL,
            key TEXT NOT NULL,
            version INTEGER NOT NULL,
            value BLOB,  -- msgpack; NULL marks a tombstone
            updated_at REAL NOT NULL,
            updated_by TEXT,
            trace_id TEXT,
            PRIMARY KEY (scope, key)
        ) WITHOUT ROWID
        """,
    ),
)


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring ``db`` to this schema's latest version; see :func:`greenroom._migrate.migrate`.

    Raises :class:`SchemaTooNew` when the database is newer than :data:`MIGRATIONS`.
    """
    return await _migrate(db, SCHEMA_TABLE, tuple((number, (sql,)) for number, sql in MIGRATIONS))
