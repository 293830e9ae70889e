"""Entries of the Redis mailbox streams: the put script, headers, decoding, dead letters."""

from __future__ import annotations

import math
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
    "attempt_of",
    "dead_letter",
    "decode_entry",
    "envelope_of",
    "encode_header",
    "entries_by_stream",
    "letter_fields",
    "undecodable",
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

    Total over its input: whatever ``header`` is (not bytes, not msgpack,
    invalid UTF-8, nested thousands deep, fields of the wrong type), the one
    error raised is :class:`msgspec.DecodeError`, saying what was found. Ids
    must be in ``0 .. 2**63 - 1`` (what :func:`~greenroom.trace.new_id`
    makes, and what the trace store can hold), ``created_at`` finite and
    ``deadline`` not NaN.

    Raises:
        msgspec.DecodeError: ``header`` is not such a header.
    """
    try:
        h = _decode_header(header)
    except Exception as exc:  # msgspec lets UnicodeDecodeError, RecursionError... out too
        raise msgspec.DecodeError(f"expected an envelope header, {_found(header, exc)}") from exc
    problem = _header_problem(
        h.id, h.correlation_id, h.trace_id, h.parent_span_id, h.created_at, h.deadline
    )
    if problem is None and h.causation_id is not None and not 0 <= h.causation_id < _ID_END:
        problem = f"causation_id {h.causation_id!r} (ids are 0 .. 2**63 - 1)"
    if problem is not None:
        raise msgspec.DecodeError(f"expected an envelope header, found {problem}")
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


_ID_END = 1 << 63  # ids are 63-bit: new_id() makes them, sqlite's INTEGER holds them
_ATTEMPT_END = 1 << 31  # a saved attempt count past this is no count greenroom wrote


def _header_problem(
    ident: int,
    corr: int | None,
    trace: int,
    parent: int | None,
    created: float,
    deadline: float | None,
) -> str | None:
    for name, value in (
        ("id", ident),
        ("correlation_id", corr),
        ("trace_id", trace),
        ("parent_span_id", parent),
    ):
        if value is not None and not 0 <= value < _ID_END:
            return f"{name} {value}, outside 0 .. 2**63 - 1"
    if not math.isfinite(created):
        return f"created_at {created}, not a finite time"
    if deadline is not None and math.isnan(deadline):
        return "deadline nan"
    return None


def _found(data: object, error: Exception) -> str:
    if not isinstance(data, bytes):
        return f"found {type(data).__name__}"
    if not data:
        return "found no bytes"
    if isinstance(error, RecursionError):
        return f"found {len(data)} bytes nested too deeply"
    return f"found {len(data)} bytes that are not one ({type(error).__name__}: {error!s:.200})"


def attempt_of(raw: object) -> int | None:
    """The attempt count saved as ``raw`` in an attempts hash, or ``None`` if it is none.

    A count is the decimal digits of an int in ``1 .. 2**31 - 1``. Never raises.
    """
    if not isinstance(raw, bytes) or not 0 < len(raw) <= 10 or not raw.isdigit():
        return None
    value = int(raw)
    return value if 0 < value < _ATTEMPT_END else None


def decode_entry(
    decoder: BodyDecoder, actor: str, fields: object
) -> tuple[Envelope | None, Poison | None]:
    """The envelope of a stream entry's ``fields``, and why it is poison, if it is. Never raises.

    ``(envelope, None)``: deliver it. ``(envelope, poison)``: its header is
    sound but its body is not (the envelope carries the poison as its body,
    so an ask can be answered). ``(None, poison)``: not even its header can
    be read. Whatever the entry holds (any bytes in any field, fields
    missing, no fields at all, a deleted entry's ``None``), the answer is one
    of these three: a foreign or broken producer cannot make it raise.
    """
    try:
        return _decode_entry(decoder, actor, fields)
    except Exception as exc:  # a case not foreseen must still not wedge the pump
        detail = f"reading it failed ({type(exc).__name__}: {exc!s:.200})"
        return None, Poison("invalid_message", _info(actor, detail))


def _decode_entry(
    decoder: BodyDecoder, actor: str, fields: object
) -> tuple[Envelope | None, Poison | None]:
    if not fields or not isinstance(fields, dict):
        found = "no fields" if not fields else f"{type(fields).__name__} fields"
        return None, Poison("invalid_message", _info(actor, f"the entry has {found}"))
    header = fields.get(b"h")
    if header is None:
        return None, Poison("invalid_message", _info(actor, "the entry has no header field 'h'"))
    body = decoder.decode(actor, fields.get(b"b"))
    try:
        envelope = envelope_of(header, actor, body)
    except msgspec.DecodeError as exc:
        return None, Poison("invalid_message", _info(actor, f"bad header field 'h': {exc}"))
    return envelope, body if isinstance(body, Poison) else None


def dead_letter(actor: str, sid: bytes, poison: Poison | None, fields: object) -> dict[Any, Any]:
    """The dead-letter stream's fields for an undeliverable entry: its error and raw fields.

    ``h`` and ``b`` are the entry's own, byte for byte (empty where it had
    none), so a redrive puts back what was there. Never raises.
    """
    error = poison.error if poison is not None else ErrorInfo(type="Unknown", message="unknown")
    raw = fields if isinstance(fields, dict) else {}
    return {
        "actor": _utf8(actor),
        "reason": poison.reason if poison is not None else "invalid_message",
        "error_type": _utf8(error.type),
        "error": _utf8(error.message),
        "at": repr(time.time()),
        "id": sid,
        "h": _raw(raw.get(b"h")),
        "b": _raw(raw.get(b"b")),
    }


def _raw(value: object) -> bytes:
    return value if isinstance(value, bytes) else b""


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


def entries_by_stream(reply: Any) -> dict[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]]:
    """XREADGROUP's answer by stream name."""
    out: dict[bytes, list[tuple[bytes, dict[bytes, bytes] | None]]] = {}
    for name, entries in reply or ():
        out[name] = [(sid, fields) for sid, fields in entries]
    return out


def undecodable(actor: str, detail: str) -> Poison:
    """The poison of an entry for ``actor`` that cannot be delivered, as ``detail`` says."""
    return Poison("invalid_message", _info(actor, detail))


def _info(actor: str, detail: str) -> ErrorInfo:
    return ErrorInfo.from_exception(UndecodableMessage(actor, detail), with_traceback=False)
