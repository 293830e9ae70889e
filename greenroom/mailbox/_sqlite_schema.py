"""The durable mailbox's schema, as numbered migrations, and its SQL.

Rules: a migration, once released, is never edited; a change is a new
migration with the next number. A database whose schema is newer than the
migrations known here is refused rather than guessed at.

Tables (one database holds the mailboxes of many actors):

* ``greenroom_mailbox_messages``: one row per unacked message. ``seq`` (an
  autoincrement sequence, never reused) orders each actor's messages, so
  per-sender FIFO holds across restarts; ``id`` is the envelope id, unique,
  which is what dedupes a re-sent envelope; ``owner`` is the lease: ``NULL``
  when free, else the id of the :class:`SqliteMailboxes` that holds it.
* ``greenroom_mailbox_owners``: the live holders of leases, with a
  heartbeat (``expires_at``); a holder past it is presumed dead.
* ``greenroom_mailbox_dead_letters``: the envelope's columns, the actor, the
  reason, the error's type, message and traceback, the attempts and the time.
* ``greenroom_mailbox_acked`` (migration 2): the ids of acked *keyed tells*
  (``Envelope.remember_after_ack``: sent with an idempotency key) and when
  they were acked. A trigger drops the insert of such an envelope whose id
  is here, so a re-send after the original was handled is deduped too;
  rows older than the dedupe window are deleted by the lease ticker. A
  redrive deletes its envelope's row here first (a person's redrive is
  meant to deliver).

Migration 2 also adds ``causation_id`` to the messages and the dead
letters (``NULL`` in rows written before: an envelope serving its own id).
"""

from __future__ import annotations

import aiosqlite

from greenroom._migrate import SchemaTooNew
from greenroom._migrate import migrate as _migrate

__all__ = [
    "ACKED",
    "DEAD_LETTERS",
    "ENVELOPE_COLUMNS",
    "FETCH",
    "FORGET_ACKED",
    "INSERT",
    "INSERT_LETTER",
    "LETTER_COLUMNS",
    "MESSAGES",
    "MIGRATIONS",
    "OWNERS",
    "REMEMBER",
    "SCHEMA_TABLE",
    "SchemaTooNew",
    "migrate",
]

SCHEMA_TABLE = "greenroom_mailbox_schema"
MESSAGES = "greenroom_mailbox_messages"
OWNERS = "greenroom_mailbox_owners"
DEAD_LETTERS = "greenroom_mailbox_dead_letters"
ACKED = "greenroom_mailbox_acked"

MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (
        1,
        (
            f"""CREATE TABLE {MESSAGES} (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                actor TEXT NOT NULL,
                id INTEGER NOT NULL UNIQUE,
                sender TEXT,
                reply_to TEXT,
                correlation_id INTEGER,
                trace_id INTEGER NOT NULL,
                parent_span_id INTEGER,
                attempt INTEGER NOT NULL,
                created_at REAL NOT NULL,
                deadline REAL,
                body BLOB NOT NULL,
                owner INTEGER
            )""",
            f"CREATE INDEX {MESSAGES}_fetch ON {MESSAGES} (actor, owner, seq)",
            f"""CREATE TABLE {OWNERS} (
                owner INTEGER PRIMARY KEY,
                pid INTEGER NOT NULL,
                host TEXT NOT NULL,
                started_at REAL NOT NULL,
                expires_at REAL NOT NULL
            )""",
            f"""CREATE TABLE {DEAD_LETTERS} (
                letter_id INTEGER PRIMARY KEY AUTOINCREMENT,
                actor TEXT NOT NULL,
                reason TEXT NOT NULL,
                error_type TEXT NOT NULL,
                error_message TEXT NOT NULL,
                traceback TEXT,
                attempts INTEGER NOT NULL,
                at REAL NOT NULL,
                envelope_id INTEGER NOT NULL,
                sender TEXT,
                reply_to TEXT,
                correlation_id INTEGER,
                trace_id INTEGER NOT NULL,
                parent_span_id INTEGER,
                created_at REAL NOT NULL,
                deadline REAL,
                body BLOB NOT NULL
            )""",
            f"CREATE INDEX {DEAD_LETTERS}_actor ON {DEAD_LETTERS} (actor, at)",
            f"CREATE INDEX {DEAD_LETTERS}_at ON {DEAD_LETTERS} (at)",
        ),
    ),
    (
        2,
        (
            f"ALTER TABLE {MESSAGES} ADD COLUMN causation_id INTEGER",
            f"ALTER TABLE {DEAD_LETTERS} ADD COLUMN causation_id INTEGER",
            f"""CREATE TABLE {ACKED} (
                id INTEGER PRIMARY KEY,
                actor TEXT NOT NULL,
                at REAL NOT NULL
            )""",
            f"CREATE INDEX {ACKED}_at ON {ACKED} (at)",
            f"""CREATE TRIGGER {ACKED}_dedupe BEFORE INSERT ON {MESSAGES}
                WHEN NEW.causation_id = NEW.id
                    AND EXISTS (SELECT 1 FROM {ACKED} WHERE id = NEW.id)
                BEGIN SELECT RAISE(IGNORE); END""",
        ),
    ),
)

# The envelope's columns, in the order rows are built (see _sqlite_rows).
ENVELOPE_COLUMNS = (
    "id, sender, reply_to, correlation_id, trace_id, parent_span_id, attempt, created_at, "
    "deadline, body, causation_id"
)
INSERT = (
    f"INSERT OR IGNORE INTO {MESSAGES} (actor, {ENVELOPE_COLUMNS}, owner) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Lease the oldest free rows of one actor, in one statement (RETURNING order
# is unspecified: the caller sorts by seq).
FETCH = (
    f"UPDATE {MESSAGES} SET owner = ? WHERE seq IN (SELECT seq FROM {MESSAGES} "
    "WHERE actor = ? AND owner IS NULL ORDER BY seq LIMIT ?) "
    f"RETURNING seq, {ENVELOPE_COLUMNS}"
)
LETTER_COLUMNS = (
    "actor, reason, error_type, error_message, traceback, attempts, at, envelope_id, sender, "
    "reply_to, correlation_id, trace_id, parent_span_id, created_at, deadline, body, causation_id"
)
INSERT_LETTER = (
    f"INSERT INTO {DEAD_LETTERS} ({LETTER_COLUMNS}) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Keyed tells, remembered after their ack (see the module docstring).
REMEMBER = f"INSERT OR REPLACE INTO {ACKED} (id, actor, at) VALUES (?, ?, ?)"
FORGET_ACKED = f"DELETE FROM {ACKED} WHERE at < ?"


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring ``db`` to this schema's latest version; see :func:`greenroom._migrate.migrate`.

    Raises :class:`SchemaTooNew` when the database is newer than :data:`MIGRATIONS`.
    """
    return await _migrate(db, SCHEMA_TABLE, MIGRATIONS)
