"""The base classes of every message body, and the check that a body is one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Generic, TypeVar

import msgspec

from greenroom._errors import InvalidMessage

if TYPE_CHECKING:
    # Type checkers know typing_extensions without it being installed, and
    # Python 3.11's typing.dataclass_transform has no frozen_default.
    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: object) -> object:
        # At run time the decorator does nothing, so Message is exactly the
        # Struct it was (no __dataclass_transform__ attribute is added).
        return lambda cls: cls


__all__ = ["Message", "Request", "check_message"]

R = TypeVar("R", covariant=True)


# msgspec's Struct is declared with dataclass_transform() without
# frozen_default, so checkers take a subclass without `frozen=True` for a
# non-frozen dataclass inheriting a frozen one (an error in mypy and pyright).
# Declaring Message as a transform of its own, frozen by default, makes its
# subclasses frozen to both checkers, as they are at run time.
@dataclass_transform(frozen_default=True, field_specifiers=(msgspec.field,))
class Message(msgspec.Struct, frozen=True, tag=True):
    """A message body: a frozen msgspec Struct, tagged with its class name.

    Subclasses are frozen and tagged too, so a union of an actor's message
    types decodes from msgpack or JSON, and the memory mailbox can pass bodies
    by reference without copying. New fields of a message type that is
    already in use must have defaults, so older encoded messages still decode.

    A subclass needs no class keywords (``class Greet(Message)``); it may add
    msgspec's others, such as ``kw_only=True``. To give a message a reply
    type that :meth:`~greenroom.ActorRef.ask` returns, subclass
    :class:`Request` instead.
    """


class Request(Message, Generic[R]):
    """A message whose handler answers with an ``R``: ``class GetOrder(Request[Order])``.

    ``await ref.ask(GetOrder(...))`` is then an ``Order`` to mypy and pyright
    alike, and either flags the reply used as anything else.
    ``R`` is only a static declaration: nothing checks the handler's return
    value at run time, and the body encodes, decodes and dispatches as any
    other :class:`Message` (tagged with its own class name, here
    ``"GetOrder"``). ``R`` is covariant: a ``Request[Order]`` is a
    ``Request[object]``. A request can still be sent with ``tell``; its
    reply is then dropped.
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
