"""Entries of the Redis mailbox streams: the put script, headers, decoding, dead letters."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import msgspec

from greenroom._errors import ErrorInfo
from greenroom.mailbox._deadletter import DeadLetter
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import UndecodableMessage
from greenroom.mailbox._sqlite_rows import BodyDecoder, Poison, letter_body

__all__ = [
    "PUT",
    "REDRIVE",
    "Keys",
    "dead_letter",
    "decode_entry",
    "envelope_of",
    "encode_header",
    "entries_by_stream",
    "fields_of",
    "letter_fields",
]

PUT = """
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) == false then return 0 end
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[2])
  return -1
end
return redis.call('XADD', KEYS[1], '*', 'h', ARGV[3], 'b', ARGV[4])
"""
# A redrive is meant to deliver: the marker of an acked keyed tell ('a', kept
# for the dedupe window) is dropped first; a pending one ('1') still dedupes.
REDRIVE = "if redis.call('GET', KEYS[2]) == 'a' then redis.call('DEL', KEYS[2]) end" + PUT

_encode = msgspec.msgpack.Encoder().encode


class _Header(msgspec.Struct, array_like=True, frozen=True):
    """An entry's header as written: an array, fields added later only at its end."""

    id: int
    sender: str | None
    reply_to: str | None
    correlation_id: int | None
    trace_id: int
    parent_span_id: int | None
    created_at: float
    deadline: float | None
    causation_id: int | None = None  # written only when set: older readers take the rest


_decode_header = msgspec.msgpack.Decoder(_Header).decode


class Keys(NamedTuple):
    """The keys of one actor: its stream, attempts hash, and dedupe-marker prefix."""

    stream: str
    attempts: str
    dedupe: str  # + envelope id


def encode_header(envelope: Envelope) -> bytes:
    """The msgpack of everything in ``envelope`` but its body and attempt.

    An array of 8 fields, or 9 when ``causation_id`` is set (a forwarded
    or keyed envelope): a header without one is readable by a greenroom
    that predates it.
    """
    fields = (
        envelope.id,
        envelope.sender,
        envelope.reply_to,
        envelope.correlation_id,
        envelope.trace_id,
        envelope.parent_span_id,
        envelope.created_at,
        envelope.deadline,
    )
    causation = envelope.causation_id
    return _encode(fields if causation is None else (*fields, causation))


def envelope_of(header: bytes, actor: str, body: object, attempt: int = 1) -> Envelope:
    """The envelope :func:`encode_header` wrote ``header`` of, around ``body``.

    Raises:
        msgspec.MsgspecError: ``header`` is not such a header.
    """
    h = _decode_header(header)
    return Envelope(
        id=h.id,
        recipient=actor,
        body=body,
        sender=h.sender,
        reply_to=h.reply_to,
        correlation_id=h.correlation_id,
        trace_id=h.trace_id,
        parent_span_id=h.parent_span_id,
        attempt=attempt,
        created_at=h.created_at,
        deadline=h.deadline,
        causation_id=h.causation_id,
    )


def decode_entry(
    decoder: BodyDecoder, actor: str, fields: dict[bytes, bytes] | None
) -> tuple[Envelope | None, Poison | None]:
    if not fields:
        return None, Poison("invalid_message", _info(actor, "the entry has no fields"))
    body = decoder.decode(actor, fields.get(b"b"))
    try:
        envelope = envelope_of(fields.get(b"h", b""), actor, body)
    except msgspec.MsgspecError as exc:
        return None, Poison("invalid_message", _info(actor, f"bad header ({exc})"))
    return envelope, body if isinstance(body, Poison) else None


def dead_letter(
    actor: str, sid: bytes, poison: Poison | None, fields: dict[bytes, bytes] | None
) -> dict[Any, Any]:
    """The dead-letter stream's fields for an undecodable entry: its error and raw fields."""
    error = poison.error if poison is not None else ErrorInfo(type="Unknown", message="unknown")
    raw = fields or {}
    return {
        "actor": _utf8(actor),
        "reason": poison.reason if poison is not None else "invalid_message",
        "error_type": _utf8(error.type),
        "error": _utf8(error.message),
        "at": repr(time.time()),
        "id": sid,
        "h": raw.get(b"h", b""),
        "b": raw.get(b"b", b""),
    }


def letter_fields(letter: DeadLetter) -> dict[Any, Any]:
    """The dead-letter stream's fields for a letter the runtime made. Never raises.

    The same fields as :func:`dead_letter` writes, so ``RedisDeadLetters``
    reads and redrives both alike: ``h`` is the envelope's header (its ids
    and trace context, kept on redrive), ``b`` its body as msgpack (a
    ``bytes`` body, a poison one, is kept as it is; a body msgpack cannot
    encode is stored as the msgpack of its ``repr``, so the letter is still
    kept), ``attempts`` the attempt it failed at. Without an entry id in an
    actor's stream, ``id`` is left out.
    """
    envelope = letter.envelope
    data = letter_body(envelope.body)
    try:
        header = encode_header(envelope)
    except (TypeError, ValueError, OverflowError):  # ids out of range: unreadable, still kept
        header = b""
    error = letter.error
    fields: dict[Any, Any] = {
        "actor": _utf8(letter.actor),
        "reason": _utf8(letter.reason),
        "error_type": _utf8(error.type),
        "error": _utf8(error.message),
        "at": repr(letter.at or time.time()),
        "attempts": envelope.attempt,
        "h": header,
        "b": data,
    }
    if error.traceback is not None:
        fields["traceback"] = _utf8(error.traceback)
    return fields


def _utf8(text: str) -> bytes:
    # Encoded here, not by the client: a lone surrogate in an error's text
    # would otherwise fail the whole pipelined write, again on every retry.
    return text.encode("utf-8", "backslashreplace")


def fields_of(
    entries: list[tuple[bytes, dict[bytes, bytes] | None]], sid: bytes
) -> dict[bytes, bytes] | None:
    for entry_id, fields in entries:
        if entry_id == sid:
            return fields
    return None


def entries_by_stream(reply: Any) -> dict[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]:
    """XREADGROUP's answer by stream name."""
    out: dict[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]] = {}
    for name, entries in reply or ():
        out[name] = [(sid, fields) for sid, fields in entries]
    return out


def _info(actor: str, detail: str) -> ErrorInfo:
    return ErrorInfo.from_exception(UndecodableMessage(actor, detail), with_traceback=False)
