"""The sqlite store's schema, as numbered migrations recorded in the database.

Rules: a migration, once released, is never edited; a change is a new
migration with the next number. The store refuses a database whose schema
is newer than the migrations it knows, rather than guess.
"""

from __future__ import annotations

import time

import aiosqlite
import anyio

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
        for number, sql in MIGRATIONS:
            if number > current:
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
