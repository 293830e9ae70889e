"""Versioned schema migrations of greenroom's sqlite files (trace store, mailboxes, store).

Rules, for every database greenroom writes: migrations are numbered; one,
once released, is never edited (a change is a new migration with the next
number); the versions applied are recorded in a table of the database; a
database whose schema is newer than the migrations a process knows is
refused, never downgraded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import aiosqlite
import anyio

__all__ = ["Migrations", "SchemaTooNew", "migrate"]

Migrations = Sequence[tuple[int, Sequence[str]]]
"""``(number, statements)`` in increasing order of number."""


class SchemaTooNew(Exception):
    """The database was written by a newer greenroom (each store translates this)."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(found, known)
        self.found = found
        self.known = known


async def migrate(db: aiosqlite.Connection, table: str, migrations: Migrations) -> int:
    """Apply the migrations ``db`` lacks, in one transaction; return its schema version.

    ``table`` records the versions applied (created when missing). Works on
    a connection in autocommit mode and in sqlite3's default mode alike.

    Raises:
        SchemaTooNew: the database records a version newer than ``migrations`` know.
        sqlite3.Error: the database failed.
    """
    await db.execute(
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    if db.in_transaction:
        await db.commit()
    await db.execute("BEGIN IMMEDIATE")
    try:
        rows = list(await db.execute_fetchall(f"SELECT max(version) FROM {table}"))
        current = int(rows[0][0] or 0)
        known = migrations[-1][0]
        if current > known:
            raise SchemaTooNew(current, known)
        for number, statements in migrations:
            if number > current:
                for statement in statements:
                    await db.execute(statement)
                await db.execute(
                    f"INSERT INTO {table} (version, applied_at) VALUES (?, ?)",
                    (number, time.time()),
                )
                current = number
        await db.execute("COMMIT")
    except BaseException:
        with anyio.CancelScope(shield=True):
            if db.in_transaction:
                await db.execute("ROLLBACK")
        raise
    return current
