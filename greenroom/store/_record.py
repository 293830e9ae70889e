"""Versioned records, tombstones, and the msgpack codec of scope values."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

from greenroom.store._errors import InvalidValue, StoredValueInvalid
from greenroom.store._scope import Scope

__all__ = ["Tombstone", "Versioned", "decode_value", "encode_value"]

T = TypeVar("T")


class Versioned(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """A value of a scope with its version and who wrote it.

    ``version`` counts the writes and deletes of the key, starting at 1; it
    never goes back, not even across a delete. ``updated_at`` is the write's
    wall-clock time in Unix seconds, ``updated_by`` the writing actor's name
    (``None`` for a write made outside any actor), ``trace_id`` the trace the
    write happened in, if any.
    """

    value: T
    version: int
    updated_at: float
    updated_by: str | None = None
    trace_id: str | None = None


class Tombstone(msgspec.Struct, frozen=True, kw_only=True):
    """A deleted key: its delete is a version like a write."""

    version: int
    updated_at: float
    updated_by: str | None = None
    trace_id: str | None = None


_encoder = msgspec.msgpack.Encoder()


def encode_value(scope: Scope[T], key: str, value: object) -> tuple[bytes, T]:
    """Validate ``value`` against the scope's type and encode it as msgpack.

    Returns the encoded bytes and the value decoded back from them: a copy
    that shares nothing mutable with the caller's object. Raises
    :class:`InvalidValue` when the value does not encode or does not match
    the type (including its ``msgspec.Meta`` constraints).
    """
    try:
        data = _encoder.encode(value)
    except (TypeError, ValueError, msgspec.EncodeError) as error:
        raise InvalidValue(scope.name, key, scope.type_name, str(error)) from error
    try:
        checked = scope.decoder.decode(data)
    except msgspec.ValidationError as error:
        raise InvalidValue(scope.name, key, scope.type_name, str(error)) from error
    return data, checked


def decode_value(scope: Scope[T], key: str, version: int, data: bytes) -> T:
    """Decode a stored value into the scope's type.

    Raises :class:`StoredValueInvalid` naming scope, key and version when it
    does not decode, never a default.
    """
    try:
        return scope.decoder.decode(data)
    except msgspec.DecodeError as error:
        raise StoredValueInvalid(scope.name, key, version, scope.type_name, str(error)) from error
