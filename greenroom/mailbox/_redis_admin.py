"""RedisDeadLetters: the dead-letter stream of RedisMailboxes, to list, show, redrive and purge.

The stream is ``<prefix>dead``; each entry is one letter, with the fields
the pump writes, for an entry it cannot decode (see
:func:`~greenroom.mailbox._redis_mailbox_entries.dead_letter`) or for a
letter the runtime made, through :class:`RedisDeadLetterSink` (see
:func:`~greenroom.mailbox._redis_mailbox_entries.letter_fields`):
``actor``, ``reason``, ``error_type``, ``error``, ``at`` (seconds since the
epoch), ``h`` and ``b`` (the envelope's header and body, as a put writes
them), and optionally ``id`` (the entry's id in its actor's stream, for
undecodable entries), ``traceback`` and ``attempts``. A letter is named by
its entry id in the dead-letter stream (``1700000000000-0``).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, cast

import anyio
import msgspec

from greenroom._errors import ErrorInfo, UsageError
from greenroom._stored import quote, stored_body, stored_text
from greenroom.mailbox._deadletter import DeadLetter, DeadLetterReason
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import MailboxUnavailable
from greenroom.mailbox._redis_client import connect, redis_error
from greenroom.mailbox._redis_mailbox_entries import REDRIVE, envelope_of

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisDeadLetterRecord", "RedisDeadLetters", "RedisRedriveOutcome"]

_LETTER_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_MAX_PART = (1 << 64) - 1  # each part of a stream entry id is a 64-bit unsigned int
_PAGE = 500  # entries per XRANGE while scanning the stream
_NO_BOUND = 2**62  # a redrive is not refused for the actor's capacity: it is a repair


class RedisDeadLetterRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A letter of the dead-letter stream: its entry id there, and the letter.

    The envelope's ``body`` is the message decoded without its type (a dict
    with its tag field, such as ``{"type": "Greet", "name": "ada"}``), or the
    stored bytes when they are not msgpack. When even the entry's header
    cannot be read, ``header_ok`` is ``False`` and the envelope's ids are 0.
    ``source_id`` is the entry's id in its actor's stream (``""`` for a
    letter the runtime made: its message may never have been in one).
    ``problems`` lists the other fields that could not be read (text that is
    not UTF-8, a time or count that is not a number), one line each; the
    letter shows neutral values there. Any letter can be purged.
    """

    id: str
    letter: DeadLetter
    source_id: str = ""
    header_ok: bool = True
    problems: tuple[str, ...] = ()


class RedisRedriveOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What redriving one letter did.

    ``status``: ``"redriven"`` (back in its actor's stream, envelope id and
    trace id kept, ``attempt`` back to 1, the letter removed),
    ``"already_queued"`` (an envelope with its id is unacked in the stream
    already; the letter was removed), ``"unreadable"`` (its header or its
    actor cannot be read, so it cannot be deduped, traced or routed; the
    letter is left: purge it) or
    ``"not_found"``.
    """

    id: str
    status: Literal["redriven", "already_queued", "unreadable", "not_found"]
    actor: str | None = None
    envelope_id: int | None = None


class RedisDeadLetters:
    """The dead-letter stream ``<prefix>dead`` of the :class:`RedisMailboxes` on ``prefix``.

    Use as ``async with RedisDeadLetters(url, prefix=...) as letters:`` (the
    ``greenroom dlq --redis URL --prefix P`` command does). A running
    process whose mailbox reads the actor's stream picks a redriven message
    up within its ``poll`` interval; otherwise the actor's next mailbox does.

    Every method raises :class:`MailboxUnavailable` (chained with ``from``)
    when Redis fails, and :class:`UsageError` for a letter id that is not
    a stream entry id.

    Args:
        client_or_url: a ``redis://`` URL (closed on exit), or a
            ``redis.asyncio.Redis`` answering bytes (left open).
        prefix: the mailboxes' key prefix.
        dedupe_ttl: seconds a redriven envelope's id is remembered against
            re-sends, as in the mailboxes.
    """

    def __init__(
        self,
        client_or_url: redis.asyncio.Redis | str,
        *,
        prefix: str = "greenroom:",
        dedupe_ttl: float = 3600.0,
    ) -> None:
        if not dedupe_ttl > 0:
            raise UsageError(f"RedisDeadLetters: dedupe_ttl must be > 0, got {dedupe_ttl}")
        for name, text in (("prefix", prefix), ("URL", client_or_url)):
            if not isinstance(text, str):
                continue
            try:
                text.encode()
            except UnicodeEncodeError as error:
                raise UsageError(
                    f"the Redis {name} {text!r} is not valid text (it holds a lone "
                    "surrogate, from bytes that are not UTF-8)"
                ) from error
        try:
            self._client, self._owned = connect(client_or_url)
        except ValueError as error:  # a URL redis-py cannot read
            raise UsageError(f"cannot use the Redis URL {client_or_url!r}: {error}") from error
        self.prefix = prefix
        self.dead_key = f"{prefix}dead"
        self._ttl_ms = max(1, int(dedupe_ttl * 1000))
        self._label = f"redis (prefix {prefix})"

    def __repr__(self) -> str:
        return f"RedisDeadLetters({self.dead_key!r})"

    async def __aenter__(self) -> Self:
        """Check that Redis answers.

        Raises:
            MailboxUnavailable: Redis cannot be reached.
        """
        try:
            await self._call("connect", self._client.ping())
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client if it was made from a URL. Idempotent."""
        if self._owned:
            self._owned = False
            # Closing connections to a server that is gone may fail: nothing to do then.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self._client.aclose()

    async def _call(self, operation: str, awaitable: Any) -> Any:
        try:
            return await awaitable
        except redis_error() as error:
            raise MailboxUnavailable(self._label, operation, str(error) or repr(error)) from error

    # -- reading ---------------------------------------------------------------

    async def query(
        self,
        *,
        actor: str | None = None,
        reason: str | None = None,
        error_type: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
    ) -> list[RedisDeadLetterRecord]:
        """The letters that match every given filter, oldest first (at most ``limit``).

        Times are seconds since the epoch, compared with the letter's ``at``;
        ``since`` is inclusive, ``until`` exclusive. Scans the whole stream.
        """
        found: list[RedisDeadLetterRecord] = []
        if limit is not None and limit <= 0:
            return found
        start = "-"
        while True:
            page = await self._call(
                "list dead letters", self._client.xrange(self.dead_key, start, "+", count=_PAGE)
            )
            for sid, fields in page:
                record = _record(sid, fields)
                letter = record.letter
                if (
                    (actor is None or letter.actor == actor)
                    and (reason is None or letter.reason == reason)
                    and (error_type is None or letter.error.type == error_type)
                    and (since is None or letter.at >= since)
                    and (until is None or letter.at < until)
                ):
                    found.append(record)
                    if limit is not None and len(found) >= limit:
                        return found
            if len(page) < _PAGE:
                return found
            start = "(" + page[-1][0].decode()

    async def get(self, letter_id: str) -> RedisDeadLetterRecord | None:
        """The letter with entry id ``letter_id``, or ``None``."""
        _check_id(letter_id)
        page = await self._call(
            "read a dead letter", self._client.xrange(self.dead_key, letter_id, letter_id, count=1)
        )
        return _record(*page[0]) if page else None

    # -- repair ----------------------------------------------------------------

    async def redrive(self, letter_ids: Sequence[str]) -> list[RedisRedriveOutcome]:
        """Put the letters' entries back at the end of their actors' streams.

        Each keeps its header and body as they were put, so its envelope id
        and trace id; its saved attempts are cleared (``attempt`` starts at
        1 again); it is deduped by envelope id like a put, but not refused
        for the actor's capacity. Then its letter is removed. Letter by
        letter: a failure midway leaves the rest as they were, and running
        the same redrive again is safe (the entry is deduped).
        """
        ids = list(letter_ids)
        for letter_id in ids:
            _check_id(letter_id)
        outcomes: list[RedisRedriveOutcome] = []
        for letter_id in ids:
            outcomes.append(await self._redrive_one(letter_id))
        return outcomes

    async def _redrive_one(self, letter_id: str) -> RedisRedriveOutcome:
        page = await self._call(
            "read a dead letter", self._client.xrange(self.dead_key, letter_id, letter_id, count=1)
        )
        if not page:
            return RedisRedriveOutcome(id=letter_id, status="not_found")
        record = _record(*page[0])
        fields = page[0][1]
        actor = record.letter.actor
        if not record.header_ok or any(p.startswith("actor:") for p in record.problems):
            return RedisRedriveOutcome(id=letter_id, status="unreadable", actor=actor)
        envelope_id = record.letter.envelope.id
        base = f"{self.prefix}{{{actor}}}:"
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.hdel(base + "a", str(envelope_id))
            pipe.eval(
                REDRIVE,
                2,
                base + "s",
                base + "d:" + str(envelope_id),
                _NO_BOUND,
                self._ttl_ms,
                fields.get(b"h", b""),
                fields.get(b"b", b""),
            )
            answers = await self._call("redrive a dead letter", pipe.execute())
        status: Literal["redriven", "already_queued"] = (
            "redriven" if isinstance(answers[-1], bytes) else "already_queued"
        )
        await self._call("remove a dead letter", self._client.xdel(self.dead_key, letter_id))
        return RedisRedriveOutcome(
            id=letter_id, status=status, actor=actor, envelope_id=envelope_id
        )

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
        """
        if letter_ids is not None:
            ids = list(letter_ids)
            for letter_id in ids:
                _check_id(letter_id)
        else:
            records = await self.query(
                actor=actor, reason=reason, error_type=error_type, since=since, until=until
            )
            ids = [r.id for r in records]
        deleted = 0
        for at in range(0, len(ids), _PAGE):
            deleted += int(
                await self._call(
                    "purge dead letters", self._client.xdel(self.dead_key, *ids[at : at + _PAGE])
                )
            )
        return deleted


def _check_id(letter_id: str) -> None:
    match = _LETTER_ID.fullmatch(letter_id) if isinstance(letter_id, str) else None
    if match is None or int(match.group(1)) > _MAX_PART or int(match.group(2)) > _MAX_PART:
        raise UsageError(
            f"a Redis dead letter is named by its stream entry id, such as "
            f"1700000000000-0 (from `greenroom dlq list`); got {letter_id!r}"
        )


def _field(fields: dict[bytes, bytes], name: bytes) -> bytes | None:
    value = fields.get(name)
    return value if value is None or isinstance(value, bytes) else str(value).encode()


def _number(
    fields: dict[bytes, bytes], name: bytes, kind: type[float] | type[int], problems: list[str]
) -> float | int | None:
    """A numeric field; ``None`` when it is absent or cannot be read (then with a problem)."""
    raw = _field(fields, name)
    if raw is None:
        return None
    try:
        value = kind(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        problems.append(f"{name.decode()}: expected a number, found {quote(raw)}")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{name.decode()}: expected a time, found {quote(raw)}")
        return None
    return value


def _record(sid: bytes, entry: object) -> RedisDeadLetterRecord:
    """A stream entry as a letter; fields it lacks or cannot read get neutral values.

    Total: whatever the entry holds, a record (see ``problems``). Never raises.
    """
    problems: list[str] = []
    fields: dict[bytes, bytes] = entry if isinstance(entry, dict) else {}
    if not isinstance(entry, dict):
        problems.append(f"fields: expected a map, found {quote(entry)}")

    def text(name: bytes, default: str = "") -> str:
        raw = _field(fields, name)
        return default if raw is None else str(stored_text(raw, name.decode(), problems))

    actor = text(b"actor")
    at = _number(fields, b"at", float, problems)
    at = 0.0 if at is None else float(at)
    attempts = _number(fields, b"attempts", int, problems)
    attempts = 1 if attempts is None else int(attempts)
    body = stored_body(_field(fields, b"b") or b"", problems)
    header_ok = True
    try:
        envelope = envelope_of(_field(fields, b"h") or b"", actor, body, attempts)
    except Exception:  # a decode boundary: not msgpack, not UTF-8, too deep, wrong shape
        header_ok = False
        envelope = Envelope(
            id=0, recipient=actor, body=body, trace_id=0, attempt=attempts, created_at=at
        )
    traceback = _field(fields, b"traceback")
    letter = DeadLetter(
        envelope=envelope,
        actor=actor,
        reason=cast("DeadLetterReason", text(b"reason", "invalid_message")),
        error=ErrorInfo(
            type=text(b"error_type", "Unknown"),
            message=text(b"error"),
            traceback=None if traceback is None else text(b"traceback"),
        ),
        at=at,
    )
    return RedisDeadLetterRecord(
        id=sid.decode("ascii", "backslashreplace") if isinstance(sid, bytes) else str(sid),
        letter=letter,
        source_id=text(b"id"),
        header_ok=header_ok,
        problems=tuple(problems),
    )
