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


# type -> (bytes its fixed-size fields can take, its str and bytes fields), or None when
# some field is unbounded (a list, a nested struct, Any): those bodies must be encoded.
_plans: dict[type, tuple[int, tuple[str, ...]] | None] = {}

_FIXED = {
    msgspec.inspect.IntType: 9,
    msgspec.inspect.FloatType: 9,
    msgspec.inspect.BoolType: 1,
    msgspec.inspect.NoneType: 1,
}
_SIZED = (msgspec.inspect.StrType, msgspec.inspect.BytesType)


def check_message(body: object) -> int | None:
    """Raise :class:`InvalidMessage` unless ``body`` can travel as a message.

    A body must be a frozen, tagged ``msgspec.Struct`` (subclassing
    :class:`Message` is the simple way). The type is checked once. Returns
    the most bytes this body's msgpack encoding can take when its fields
    are scalars, ``str`` or ``bytes`` (so a size limit above it needs no
    encoding to check; a ``str`` counts 4 bytes per character), ``None``
    otherwise.
    """
    cls = type(body)
    try:
        plan = _plans[cls]
    except KeyError:
        plan = _plans[cls] = _check_type(cls, body)
    if plan is None:
        return None
    total, sized = plan
    for name in sized:
        value = getattr(body, name)
        if isinstance(value, str):
            total += 4 * len(value)
        elif isinstance(value, bytes):
            total += len(value)
    return total


def fixed_size(body: object) -> bool:
    """Whether every body of ``type(body)`` has the same size bound (no str or bytes field).

    Only meaningful after :func:`check_message` accepted a body of the type.
    """
    plan = _plans.get(type(body))
    return plan is not None and not plan[1]


def _check_type(cls: type, body: object) -> tuple[int, tuple[str, ...]] | None:
    if not isinstance(body, msgspec.Struct):
        raise InvalidMessage(cls.__qualname__, "it is not a msgspec Struct")
    config = body.__struct_config__
    if not config.frozen:
        raise InvalidMessage(cls.__qualname__, "it is not frozen, so a receiver could mutate it")
    if config.tag is None:
        raise InvalidMessage(cls.__qualname__, "it has no tag, so it cannot be decoded in a union")
    return _size_plan(cls)


def _size_plan(cls: type) -> tuple[int, tuple[str, ...]] | None:
    try:
        info = msgspec.inspect.type_info(cls)
    except (TypeError, ValueError):
        return None
    if not isinstance(info, msgspec.inspect.StructType):
        return None
    total = 16 + len(str(info.tag)) + len(str(info.tag_field))
    sized: list[str] = []
    for field in info.fields:
        options = (
            field.type.types if isinstance(field.type, msgspec.inspect.UnionType) else (field.type,)
        )
        fixed = 0
        for option in options:
            size = _FIXED.get(type(option))
            if size is None:
                if not isinstance(option, _SIZED):
                    return None
                size = 5  # the str/bytes header; the data is counted per body
                if field.name not in sized:
                    sized.append(field.name)
            fixed = max(fixed, size)
        total += 9 + len(field.encode_name) + fixed
    return total, tuple(sized)
