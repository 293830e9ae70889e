"""The base class of every message body."""

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


_known: set[type] = set()


def check_message(body: object) -> None:
    """Raise :class:`InvalidMessage` unless ``body`` can travel as a message.

    A body must be a frozen, tagged ``msgspec.Struct`` (subclassing
    :class:`Message` is the simple way). The check is done once per type.
    """
    cls = type(body)
    if cls in _known:
        return
    if not isinstance(body, msgspec.Struct):
        raise InvalidMessage(cls.__qualname__, "it is not a msgspec Struct")
    config = body.__struct_config__
    if not config.frozen:
        raise InvalidMessage(cls.__qualname__, "it is not frozen, so a receiver could mutate it")
    if config.tag is None:
        raise InvalidMessage(cls.__qualname__, "it has no tag, so it cannot be decoded in a union")
    _known.add(cls)
