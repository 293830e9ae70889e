"""Rows of the durable mailbox: envelopes and dead letters to and from sqlite tuples.

Bodies are stored as msgpack. Reading one back decodes it into the union of
the receiving actor's message types; a body that cannot be (random bytes,
truncated msgpack, an unknown tag, fields of the wrong type, over the size
limit) is *poison*: :meth:`BodyDecoder.decode` says why, as the dead-letter
reason and error, and never raises.
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

__all__ = [
    "BodyDecoder",
    "Poison",
    "encode_body",
    "envelope_from_row",
    "letter_body",
    "letter_row",
    "message_row",
    "poison_letter",
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
            shown = f"{body!r:.200}"
        except Exception:  # a repr that fails (or recurses) must not lose the letter
            shown = "<no repr>"
        return _encode(f"<unencodable {type(body).__qualname__}: {shown}>")


def letter_row(letter: DeadLetter) -> tuple[Any, ...]:
    """The ``INSERT_LETTER`` parameters of ``letter``. Never raises.

    A body that is ``bytes`` is kept as it is (a poison body, exactly as it
    was stored); any other body is msgpack-encoded, or, when it cannot be,
    stored as the msgpack of its ``repr`` so the letter is still kept.
    """
    envelope = letter.envelope
    data = letter_body(envelope.body)
    error = letter.error
    return (
        letter.actor,
        letter.reason,
        error.type,
        error.message,
        error.traceback,
        envelope.attempt,
        letter.at if letter.at else time.time(),
        envelope.id,
        envelope.sender,
        envelope.reply_to,
        envelope.correlation_id,
        envelope.trace_id,
        envelope.parent_span_id,
        envelope.created_at,
        envelope.deadline,
        data,
        envelope.causation_id,
    )


def poison_letter(actor: str, envelope: Envelope, poison: Poison) -> tuple[Any, ...]:
    """The dead-letter row of a stored message that cannot be decoded."""
    error = poison.error
    return (
        actor,
        poison.reason,
        error.type,
        error.message,
        error.traceback,
        envelope.attempt,
        time.time(),
        envelope.id,
        envelope.sender,
        envelope.reply_to,
        envelope.correlation_id,
        envelope.trace_id,
        envelope.parent_span_id,
        envelope.created_at,
        envelope.deadline,
        envelope.body,
        envelope.causation_id,
    )
