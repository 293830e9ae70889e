"""The base class of every message body, and the check that a body is one."""

from __future__ import annotations

import msgspec

from greenroom._errors import InvalidMessage

__all__ = ["Message", "check_message"]


class Message(msgspec.Struct, frozen=True, tag=True):
    """A message body: a frozen msgspec Struct, tagged with its class name.

    Subclasses are frozen and tagged too, so a union of an actor's message
    types decodes from msgpack or JSON, and the memory mailbox can pass bodies
    by reference without copying. New fields of a message type that is
    already in use must have defaults, so older encoded messages still decode.
    """


_UNBOUNDED = -1
# type -> most bytes its msgpack encoding can take, or _UNBOUNDED
_bounds: dict[type, int] = {}

_FIXED = {
    msgspec.inspect.IntType: 9,
    msgspec.inspect.FloatType: 9,
    msgspec.inspect.BoolType: 1,
    msgspec.inspect.NoneType: 1,
}


def check_message(body: object) -> int | None:
    """Raise :class:`InvalidMessage` unless ``body`` can travel as a message.

    A body must be a frozen, tagged ``msgspec.Struct`` (subclassing
    :class:`Message` is the simple way). The check is done once per type.
    Returns the most bytes the body's msgpack encoding can take when its
    fields are all fixed-size scalars (so a size limit above it needs no
    encoding to check), ``None`` otherwise.
    """
    cls = type(body)
    bound = _bounds.get(cls)
    if bound is None:
        bound = _bounds[cls] = _check_type(cls, body)
    return None if bound == _UNBOUNDED else bound


def _check_type(cls: type, body: object) -> int:
    if not isinstance(body, msgspec.Struct):
        raise InvalidMessage(cls.__qualname__, "it is not a msgspec Struct")
    config = body.__struct_config__
    if not config.frozen:
        raise InvalidMessage(cls.__qualname__, "it is not frozen, so a receiver could mutate it")
    if config.tag is None:
        raise InvalidMessage(cls.__qualname__, "it has no tag, so it cannot be decoded in a union")
    return _size_bound(cls)


def _size_bound(cls: type) -> int:
    try:
        info = msgspec.inspect.type_info(cls)
    except (TypeError, ValueError):
        return _UNBOUNDED
    if not isinstance(info, msgspec.inspect.StructType):
        return _UNBOUNDED
    total = 16 + len(str(info.tag)) + len(str(info.tag_field))
    for field in info.fields:
        options = (
            field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        )
        sizes = [_FIXED.get(type(option)) for option in options]
        if any(size is None for size in sizes):
            return _UNBOUNDED
        total += 9 + len(field.encode_name) + max(s for s in sizes if s is not None)
    return total
