"""RedisDeadLetterSink: the runtime's dead letters, written to the Redis dead-letter stream."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING

from greenroom.mailbox._deadletter import DeadLetter, DeadLetterReason, MemoryDeadLetters
from greenroom.mailbox._redis_admin import (
    RedisDeadLetterRecord,
    RedisDeadLetters,
    RedisRedriveOutcome,
)
from greenroom.mailbox._redis_mailbox_entries import letter_fields
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.mailbox._redis_mailboxes import Pump

__all__ = ["RedisDeadLetterSink"]


class RedisDeadLetterSink:
    """A dead-letter sink that writes to ``<prefix>dead``, the stream of RedisDeadLetters.

    Get it as ``boxes.dead_letters`` of a :class:`RedisMailboxes` and pass
    it as ``Runtime(dead_letters=...)`` (``serve_node`` does). Every letter
    the runtime makes (a message that failed past its retry policy, a full
    mailbox, a stopped actor, an unknown message...), for actors on any
    mailbox, Redis or memory, is then an entry of the same stream as the
    entries the Redis mailboxes cannot decode: ``greenroom dlq --redis URL
    --prefix P`` lists, shows, redrives and purges them alike. A redriven
    letter goes back to its actor's stream with its envelope id and trace
    id, ``attempt`` back to 1; only a Redis mailbox reads that stream, so a
    letter of an actor on a memory mailbox is for inspection.

    :meth:`add` never blocks and never raises: the letter is encoded at once
    (a body msgpack cannot encode is kept as the text of its ``repr``) and
    queued for the mailboxes' next pipelined write, which carries the ack of
    the failed message too when the runtime dead-letters one. While Redis is
    unreachable letters stay queued, at most ``backlog``, and are written
    when it answers; a letter may then be written twice if a reply was lost.
    A letter that cannot be kept is logged as an error and counted in
    :attr:`dropped`: the queue is at ``backlog``, or the mailboxes are
    closed. (Closing during an outage drops the queued letters; the
    mailboxes log how many.)

    :meth:`list` does not read Redis: it answers the newest ``window``
    letters added in this process, for tests and scripts. The stream, with
    every process's letters, is read by the async :meth:`query` and
    :meth:`get`, and repaired by :meth:`redrive` and :meth:`purge`, as in
    :class:`RedisDeadLetters` (they raise :class:`MailboxUnavailable` when
    Redis fails).

    Attributes:
        dropped: letters that could not be kept.
        total: letters added.
    """

    def __init__(self, pump: Pump, *, backlog: int = 10_000, window: int = 1_000) -> None:
        self._pump = pump
        self._backlog = backlog
        self._recent = MemoryDeadLetters(window)
        self._admin = RedisDeadLetters(pump.client, prefix=pump.prefix, dedupe_ttl=pump.dedupe_ttl)
        self.dropped = 0
        self.total = 0

    def __repr__(self) -> str:
        return f"RedisDeadLetterSink({self._pump.dead_key!r})"

    # -- the sink --------------------------------------------------------------

    def add(self, letter: DeadLetter) -> None:
        """Queue ``letter`` for the next write to the stream. Never blocks, never raises."""
        self.total += 1
        self._recent.add(letter)
        pump = self._pump
        if pump.stopped:
            self._drop(letter, "the mailboxes are closed")
            return
        if len(pump.letters) >= self._backlog:
            self._drop(letter, f"{self._backlog} letters wait for Redis already")
            return
        try:
            fields = letter_fields(letter)
        except Exception as error:  # never raise into the runtime
            self._drop(letter, str(error) or repr(error))
            return
        pump.letters.append(fields)
        pump.wake()

    def _drop(self, letter: DeadLetter, why: str) -> None:
        self.dropped += 1
        logger.bind(actor=letter.actor, event="dead_letter_dropped").error(
            "redis (prefix {prefix}): a dead letter for {actor} could not be kept ({why})",
            prefix=self._pump.prefix,
            actor=letter.actor,
            why=why,
        )

    def list(
        self,
        *,
        actor: str | None = None,
        reason: DeadLetterReason | None = None,
        since: float | None = None,
    ) -> builtins.list[DeadLetter]:
        """The newest letters added in this process, oldest first, filtered. Never blocks.

        Letters redriven or purged since are still here, and other
        processes' letters are not: :meth:`query` reads the stream.
        """
        return self._recent.list(actor=actor, reason=reason, since=since)

    # -- the stream (async) ----------------------------------------------------

    async def query(
        self,
        *,
        actor: str | None = None,
        reason: str | None = None,
        error_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> builtins.list[RedisDeadLetterRecord]:
        """The letters of the stream that match every filter, oldest first (at most ``limit``).

        Letters added here and not yet written are not included (await
        ``boxes.flush()`` first). See :meth:`RedisDeadLetters.query`.

        Raises:
            MailboxUnavailable: Redis failed.
        """
        return await self._admin.query(
            actor=actor,
            reason=reason,
            error_type=error_type,
            since=since,
            until=until,
            limit=limit,
        )

    async def get(self, letter_id: str) -> RedisDeadLetterRecord | None:
        """The letter with entry id ``letter_id``, or ``None``.

        Raises:
            UsageError: ``letter_id`` is not a stream entry id.
            MailboxUnavailable: Redis failed.
        """
        return await self._admin.get(letter_id)

    async def redrive(self, letter_ids: Sequence[str]) -> builtins.list[RedisRedriveOutcome]:
        """Put the letters' entries back at the end of their actors' streams.

        As :meth:`RedisDeadLetters.redrive`; an actor whose Redis mailbox is
        in this process reads its entry at once rather than at the next poll.

        Raises:
            UsageError: an id is not a stream entry id.
            MailboxUnavailable: Redis failed (the letters before the failure were redriven).
        """
        outcomes = await self._admin.redrive(letter_ids)
        pump = self._pump
        for outcome in outcomes:
            if outcome.status != "redriven" or outcome.actor is None:
                continue
            box = pump.boxes.get(outcome.actor)
            if box is not None:
                box.wanted = True
                pump.wake()
        return outcomes

    async def purge(
        self,
        letter_ids: Sequence[str] | None = None,
        *,
        actor: str | None = None,
        reason: str | None = None,
        error_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> int:
        """Delete the letters named, or those that match the filters; how many were deleted.

        With neither ids nor filters, every letter is deleted.

        Raises:
            UsageError: an id is not a stream entry id.
            MailboxUnavailable: Redis failed.
        """
        return await self._admin.purge(
            letter_ids,
            actor=actor,
            reason=reason,
            error_type=error_type,
            since=since,
            until=until,
        )
