"""Leases of a durable mailbox database: who holds which rows, and when a holder is dead.

A row's ``owner`` column is its lease: the id of the :class:`SqliteMailboxes`
(one per open database per process) that fetched it, or inserted it for one
of its own mailboxes. Leases are renewed all at once, not row by row: each
holder has a row in the owners table with a heartbeat, ``expires_at``,
pushed ``lease`` seconds ahead every ``poll`` seconds.

The rule for leases of a dead holder, applied on open and on every poll:
a holder is dead when its heartbeat is older than ``expires_at``, or, on the
same host, at once when its process id is no longer running (a killed
process restarted on the same database therefore takes its predecessor's
messages back immediately, not after ``lease`` seconds). Every row it held
becomes free again with ``attempt`` incremented, and is delivered again in
``seq`` order. A holder that closes cleanly frees its rows itself (only the
handed-out, unacked ones count an attempt) and removes its owners row.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Sequence
from typing import Any

import aiosqlite

from greenroom.mailbox._sqlite_schema import MESSAGES, OWNERS
from greenroom.trace._logging import logger

__all__ = ["Leases", "pid_alive"]

_HOST = socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with id ``pid`` runs on this host (zombies count as running)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Leases:
    """This holder's id, its heartbeat, and the reclaiming of dead holders' rows."""

    def __init__(self, lease: float) -> None:
        self.lease = lease
        self.owner = secrets.randbits(62) + 1
        self.pid = os.getpid()
        self.host = _HOST
        self.reclaimed = 0

    async def register(self, db: aiosqlite.Connection) -> None:
        """Add this holder to the owners table (in the caller's transaction)."""
        now = time.time()
        await db.execute(
            f"INSERT OR REPLACE INTO {OWNERS} (owner, pid, host, started_at, expires_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (self.owner, self.pid, self.host, now, now + self.lease),
        )

    async def maintain(self, db: aiosqlite.Connection) -> list[str]:
        """Renew the heartbeat, free the rows of dead holders; actors with free rows.

        Runs in the caller's transaction.
        """
        now = time.time()
        cursor = await db.execute(
            f"UPDATE {OWNERS} SET expires_at = ? WHERE owner = ?", (now + self.lease, self.owner)
        )
        if cursor.rowcount == 0:
            # Another process found our heartbeat stale and took our rows back;
            # what we still buffer may be delivered twice (at-least-once holds).
            logger.bind(event="lease_lost").warning(
                "mailbox leases of owner {owner} were reclaimed by another process",
                owner=self.owner,
            )
            await self.register(db)
        holders = await db.execute_fetchall(
            f"SELECT owner, pid, host, expires_at FROM {OWNERS} WHERE owner != ?", (self.owner,)
        )
        dead = [(row[0],) for row in holders if self._dead(row, now)]
        if dead:
            before = db.total_changes
            await db.executemany(
                f"UPDATE {MESSAGES} SET owner = NULL, attempt = attempt + 1 WHERE owner = ?", dead
            )
            self.reclaimed += db.total_changes - before
            await db.executemany(f"DELETE FROM {OWNERS} WHERE owner = ?", dead)
        rows = await db.execute_fetchall(
            f"SELECT DISTINCT actor FROM {MESSAGES} WHERE owner IS NULL"
        )
        return [actor for (actor,) in rows]

    def _dead(self, row: Sequence[Any], now: float) -> bool:
        _, pid, host, expires_at = row
        if type(expires_at) not in (int, float) or type(pid) is not int:
            return True  # a row no greenroom wrote (or a damaged one) holds nothing alive
        return bool(expires_at < now or (host == self.host and not pid_alive(pid)))

    async def free_orphans(self, db: aiosqlite.Connection) -> int:
        """Free rows leased to no known holder (an owner no greenroom wrote); how many.

        Such a row would otherwise be neither delivered nor dead-lettered.
        It counts one more attempt, like a row taken back from a dead
        holder. Runs on open, in the caller's transaction (one scan of the
        messages table, so not on every poll).
        """
        cursor = await db.execute(
            f"UPDATE {MESSAGES} SET owner = NULL, attempt = attempt + 1 "
            f"WHERE owner IS NOT NULL AND owner NOT IN (SELECT owner FROM {OWNERS})"
        )
        freed = max(cursor.rowcount, 0)
        self.reclaimed += freed
        return freed

    async def scan(self, db: aiosqlite.Connection) -> dict[str, tuple[int, int]]:
        """Per actor: (unacked rows, free rows)."""
        rows = await db.execute_fetchall(
            f"SELECT actor, count(*), count(*) - count(owner) FROM {MESSAGES} GROUP BY actor"
        )
        return {actor: (count, free) for actor, count, free in rows}

    async def release_all(self, db: aiosqlite.Connection) -> None:
        """Free every row this holder still has, remove it from the owners table, commit."""
        await db.execute(f"UPDATE {MESSAGES} SET owner = NULL WHERE owner = ?", (self.owner,))
        await db.execute(f"DELETE FROM {OWNERS} WHERE owner = ?", (self.owner,))
        await db.commit()
