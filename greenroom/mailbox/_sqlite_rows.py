"""Rows of the durable mailbox: envelopes and dead letters to and from sqlite tuples.

Bodies are stored as msgpack. Reading one back decodes it into the union of
the receiving actor's message types; a body that cannot be (random bytes,
truncated msgpack, an unknown tag, fields of the wrong type, over the size
limit) is *poison*: :meth:`BodyDecoder.decode` says why, as the dead-letter
reason and error, and never raises.

The other columns of a row are checked too (:func:`read_row`): sqlite keeps
whatever was written, so a row written by other code or damaged on disk can
hold text in an integer column, an id out of range, or text that is not
UTF-8 (the connections read text with :func:`decode_text`, which marks such
text instead of failing the whole query). Such a row is poison as well. A
dead-letter row is always well typed (:func:`letter_row`, :func:`poison_letter`):
a value that cannot be stored as its column's type is replaced by a neutral
one, and the poison's error names the value that was found.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Union

import msgspec

from greenroom._errors import ErrorInfo, InvalidMessage, MessageTooLarge, UnknownMessage
from greenroom.mailbox._deadletter import DeadLetter, DeadLetterReason
from greenroom.mailbox._envelope import Envelope
from greenroom.mailbox._errors import UndecodableMessage
from greenroom.mailbox._sqlite_columns import (
    MAX_ATTEMPT,
    MAX_ID,
    InvalidText,
    int_or,
    is_int,
    is_time,
    opt_int,
    opt_text,
    problems,
    real_or,
    shown,
    shown_value,
    text,
)

__all__ = [
    "BodyDecoder",
    "Poison",
    "encode_body",
    "envelope_from_row",
    "letter_body",
    "letter_row",
    "message_row",
    "poison_letter",
    "read_row",
    "storable_envelope",
    "stored_body",
    "stray_letter",
]


_encode = msgspec.msgpack.Encoder().encode
_decode_any = msgspec.msgpack.Decoder().decode


def encode_body(body: object) -> bytes:
    """The msgpack of ``body``.

    Raises:
        InvalidMessage: ``body`` holds something msgpack cannot encode.
    """
    try:
        return _encode(body)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise InvalidMessage(type(body).__qualname__, f"it cannot be encoded: {exc}") from exc


def message_row(actor: str, envelope: Envelope, data: bytes, owner: int | None) -> tuple[Any, ...]:
    """The ``INSERT`` parameters of ``envelope`` (see ``_sqlite_schema.INSERT``)."""
    return (
        actor,
        envelope.id,
        envelope.sender,
        envelope.reply_to,
        envelope.correlation_id,
        envelope.trace_id,
        envelope.parent_span_id,
        envelope.attempt,
        envelope.created_at,
        envelope.deadline,
        data,
        envelope.causation_id,
        owner,
    )


def envelope_from_row(actor: str, row: Sequence[Any], body: object) -> Envelope:
    """An envelope from a ``FETCH`` row ``(seq, id, sender, ..., body, causation_id)``
    and its decoded body."""
    _, ident, sender, reply_to, correlation_id, trace_id, parent, attempt, created, deadline = row[
        :10
    ]
    return Envelope(
        id=ident,
        recipient=actor,
        body=body,
        sender=sender,
        reply_to=reply_to,
        correlation_id=correlation_id,
        trace_id=trace_id,
        parent_span_id=parent,
        attempt=attempt,
        created_at=created,
        deadline=deadline,
        causation_id=row[11],
    )


class Poison(msgspec.Struct, frozen=True):
    """Why a stored body cannot be delivered: its dead-letter reason and error."""

    reason: DeadLetterReason
    error: ErrorInfo
    cause: Exception | None = None  # the error itself, for a reply to an ask; never stored


class BodyDecoder:
    """Decodes stored bodies into the union of one actor's message types."""

    __slots__ = ("_accepted", "_decoders", "_limit", "_tags")

    def __init__(self, message_types: tuple[type, ...], limit: int | None) -> None:
        self._limit = limit
        self._accepted = tuple(sorted(t.__qualname__ for t in message_types))
        self._tags: set[tuple[str, object]] = set()
        for cls in message_types:
            config = getattr(cls, "__struct_config__", None)
            if config is not None and config.tag is not None:
                self._tags.add((config.tag_field, config.tag))
        self._decoders: list[msgspec.msgpack.Decoder[Any]] = []
        if message_types:
            try:
                union: Any = Union[message_types]  # noqa: UP007 - a union of a runtime tuple
                self._decoders = [msgspec.msgpack.Decoder(union)]
            except TypeError:  # types that cannot share a union (tag fields differ)
                self._decoders = [msgspec.msgpack.Decoder(t) for t in message_types]

    def decode(self, actor: str, data: object) -> object | Poison:
        """The message in ``data``, or why it is poison."""
        if not isinstance(data, bytes):
            detail = f"the body is {type(data).__name__}, not msgpack bytes"
            return Poison("invalid_message", _info(UndecodableMessage(actor, detail)))
        if self._limit is not None and len(data) > self._limit:
            too_large = MessageTooLarge("stored message", len(data), self._limit)
            return Poison("too_large", _info(too_large))
        error: Exception | None = None
        for decoder in self._decoders:
            try:
                message: object = decoder.decode(data)
                return message
            # msgspec lets more than MsgspecError out of hostile bytes: a str
            # that is not UTF-8 (UnicodeDecodeError), nesting past the C stack
            # (RecursionError), an unhashable map key or tag (TypeError).
            except _UNDECODABLE as exc:
                error = exc
        return self._classify(actor, data, error)

    def _classify(self, actor: str, data: bytes, error: Exception | None) -> Poison:
        try:
            raw = _decode_any(data)
        except _UNDECODABLE as exc:
            detail = f"it is not valid msgpack ({_describe(exc)})"
            return Poison("invalid_message", _info(UndecodableMessage(actor, detail)))
        if isinstance(raw, dict):
            fields = {field for field, _ in self._tags} or {"type"}
            tags = [raw.get(field) for field in fields if field in raw]
            if not any(_known_tag(self._tags, field, raw.get(field)) for field in fields):
                tag = _shown_tag(tags[0]) if tags else "an untagged map"
                unknown = UnknownMessage(actor, tag, self._accepted)
                return Poison("unknown_message", _info(unknown), unknown)
        detail = f"it does not fit the message types ({_describe(error)})"
        return Poison("invalid_message", _info(UndecodableMessage(actor, detail)))


_UNDECODABLE = (msgspec.MsgspecError, UnicodeDecodeError, RecursionError, TypeError, ValueError)


def _describe(error: Exception | None) -> str:
    if error is None:
        return "no decoder"
    if isinstance(error, RecursionError):
        return "it is nested too deeply"
    text = str(error)
    return (
        f"{type(error).__name__}: {text:.300}"
        if not isinstance(error, msgspec.MsgspecError)
        else f"{text:.300}"
    )


def _known_tag(tags: set[tuple[str, object]], field: str, value: object) -> bool:
    try:
        return (field, value) in tags
    except TypeError:  # an unhashable tag (a list, a map) is no tag of ours
        return False


def _shown_tag(tag: object) -> str:
    try:
        text = repr(tag) if not isinstance(tag, str) else tag
    except RecursionError:
        text = f"a deeply nested {type(tag).__name__}"
    return text[:200]


def _info(error: Exception) -> ErrorInfo:
    return ErrorInfo.from_exception(error, with_traceback=False)


def stored_body(data: object) -> bytes:
    """A stored body as bytes for a dead letter: as it is, bad text's raw bytes, or msgpack."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, InvalidText):
        return data.raw
    return letter_body(data)


def read_row(
    actor: str, row: Sequence[Any], decoder: BodyDecoder
) -> tuple[Envelope, Poison | None]:
    """The envelope of a ``FETCH`` row, and ``None``; or a storable envelope and why it is poison.

    Never raises: a row whose columns do not hold what greenroom writes, or
    whose body does not decode, is poison; so is a row this code fails on.
    The envelope of a poison row carries the stored body as bytes.
    """
    try:
        found = problems(row)
        if found:
            detail = "its row is invalid: " + "; ".join(found)
            poison = Poison("invalid_message", _info(UndecodableMessage(actor, detail)))
            return storable_envelope(actor, row), poison
        data = row[10]
        body = decoder.decode(actor, data)
        if isinstance(body, Poison):
            return storable_envelope(actor, row), body
        return envelope_from_row(actor, row, body), None
    except Exception as exc:  # a bug must not stop the rows behind this one
        detail = f"reading its row failed ({type(exc).__name__}: {shown(exc)})"
        poison = Poison("invalid_message", _info(UndecodableMessage(actor, detail)))
        return storable_envelope(actor, row), poison


def storable_envelope(actor: str, row: Sequence[Any]) -> Envelope:
    """An envelope of ``row`` that a dead-letter row can hold: bad values made neutral."""
    try:
        (
            _,
            ident,
            sender,
            reply_to,
            correlation,
            trace_id,
            parent,
            attempt,
            created,
            deadline,
            data,
        ) = row[:11]
        causation = row[11] if len(row) > 11 else None
    except Exception:
        return Envelope(id=0, recipient=actor, body=b"", trace_id=0, created_at=0.0)
    return Envelope(
        id=ident if is_int(ident, 1, MAX_ID) else 0,
        recipient=actor,
        body=_safely(stored_body, data, b""),
        sender=sender if isinstance(sender, str) else None,
        reply_to=reply_to if isinstance(reply_to, str) else None,
        correlation_id=correlation if type(correlation) is int else None,
        trace_id=trace_id if is_int(trace_id, 1, MAX_ID) else 0,
        parent_span_id=parent if type(parent) is int else None,
        attempt=attempt if is_int(attempt, 1, MAX_ATTEMPT) else 1,
        created_at=float(created) if is_time(created) else 0.0,
        deadline=float(deadline) if is_time(deadline) else None,
        causation_id=causation if is_int(causation, 1, MAX_ID) else None,
    )


def stray_letter(actor: object, row: Sequence[Any]) -> tuple[Any, ...]:
    """The dead-letter row of a ``FETCH``-shaped row whose ``actor`` names no actor. Never raises.

    Such a row (its actor column is not UTF-8 text) can never be fetched by
    an actor, so it is moved to the dead letters on open, reason
    ``"undeliverable"``.
    """
    name = text(actor)
    detail = f"its row names no actor: column actor holds {shown_value(actor)}, expected UTF-8 text"
    poison = Poison("undeliverable", _info(UndecodableMessage(name, detail)))
    return poison_letter(name, storable_envelope(name, row), poison)


def _safely(fn: Any, value: object, default: Any) -> Any:
    try:
        return fn(value)
    except Exception:
        return default


def letter_body(body: object) -> bytes:
    """A dead letter's body as stored. Never raises.

    ``bytes`` (a poison body, exactly as it was stored) are kept as they
    are; anything else is msgpack-encoded, or, when it cannot be, stored as
    the msgpack of its ``repr`` so the letter is still kept.
    """
    if isinstance(body, bytes):
        return body
    try:
        return _encode(body)
    except (TypeError, ValueError, OverflowError, RecursionError):
        try:
            described = f"{body!r:.200}"
        except Exception:  # a repr that fails (or recurses) must not lose the letter
            described = "<no repr>"
        return _encode(f"<unencodable {type(body).__qualname__}: {described}>")


def letter_row(letter: DeadLetter) -> tuple[Any, ...]:
    """The ``INSERT_LETTER`` parameters of ``letter``. Never raises.

    A body that is ``bytes`` is kept as it is (a poison body, exactly as it
    was stored); any other body is msgpack-encoded, or, when it cannot be,
    stored as the msgpack of its ``repr`` so the letter is still kept. Text
    that sqlite cannot store (lone surrogates, from an error message that
    echoes bad input) is stored with those characters escaped, and numbers
    out of their column's range are replaced (see :func:`_letter`).
    """
    envelope = letter.envelope
    return _letter(
        letter.actor,
        letter.reason,
        letter.error,
        envelope,
        letter.at if letter.at else time.time(),
        letter_body(envelope.body),
    )


def poison_letter(actor: str, envelope: Envelope, poison: Poison) -> tuple[Any, ...]:
    """The dead-letter row of a stored message that cannot be decoded. Never raises."""
    return _letter(
        actor, poison.reason, poison.error, envelope, time.time(), stored_body(envelope.body)
    )


def _letter(
    actor: str, reason: str, error: ErrorInfo, envelope: Envelope, at: float, data: bytes
) -> tuple[Any, ...]:
    # Every value fits its column (see _sqlite_schema), whatever it was: a
    # letter that cannot be written would fail its whole commit, again and again.
    return (
        text(actor),
        text(reason),
        text(error.type),
        text(error.message),
        None if error.traceback is None else text(error.traceback),
        int_or(envelope.attempt, 1),
        real_or(at, time.time()),
        int_or(envelope.id, 0),
        opt_text(envelope.sender),
        opt_text(envelope.reply_to),
        opt_int(envelope.correlation_id),
        int_or(envelope.trace_id, 0),
        opt_int(envelope.parent_span_id),
        real_or(envelope.created_at, 0.0),
        None if envelope.deadline is None else real_or(envelope.deadline, None),
        data,
        opt_int(envelope.causation_id),
    )
