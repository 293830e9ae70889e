"""Actors and their typed handlers."""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

import msgspec

from greenroom._errors import ErrorInfo, InvalidSpec, UsageError

if TYPE_CHECKING:
    from greenroom.actors._cell import Cell
    from greenroom.actors._context import ActorContext

__all__ = ["IGNORE", "Actor", "Ignore", "handler"]

HandlerFn = Callable[[Any, Any], Awaitable[Any]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Ignore:
    """The type of :data:`IGNORE`."""

    _instance: Ignore | None = None

    def __new__(cls) -> Ignore:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "greenroom.IGNORE"


IGNORE: Final = Ignore()
"""Returned from ``on_start`` to say: do not run this child (OTP's ``ignore``).

The supervisor keeps the child's spec, lists the child as ``"ignored"``, and
goes on starting the next one.
"""


@overload
def handler(fn: F, /) -> F: ...
@overload
def handler(*types: type) -> Callable[[F], F]: ...
def handler(*args: Any) -> Any:
    """Mark an async method as the handler of a message type; its return value is the reply.

    The type is read from the message parameter's annotation (a union
    registers each member), or given: ``@handler(Ping, Pong)``. A message
    whose exact type has no handler goes to that of its nearest base class,
    if any (a handler of ``greenroom.Message`` takes everything else). The
    dispatch table is built once per class, at its first spawn.

    Raises:
        InvalidSpec: ``@handler(...)`` is given something that is not a type.
    """
    if len(args) == 1 and callable(args[0]) and not isinstance(args[0], type):
        fn = args[0]
        fn.__gr_handler__ = None
        return fn
    for t in args:
        if not isinstance(t, type):
            raise InvalidSpec(f"@handler(...) takes message types, got {t!r}")

    def mark(fn: F) -> F:
        fn.__gr_handler__ = tuple(args)  # type: ignore[attr-defined]
        return fn

    return mark


class Actor:
    """An actor: state owned by one task, changed only by the messages it handles.

    Subclass it and mark async methods with :func:`handler`. Inside a
    handler, ``self.ctx`` is the actor's :class:`ActorContext`. One message
    is handled at a time, so handlers need no locks.

    Lifecycle hooks run in the task of the supervisor starting or stopping
    the actor, before its first message or after its last:

    * ``on_start()``: after construction. Return :data:`IGNORE` to not run;
      if it raises, the start fails.
    * ``on_restart(error)``: instead of ``on_start``, on the fresh instance
      made after a failure; the default calls ``on_start``.
    * ``on_stop()``: when the instance stops (normally or for a restart);
      skipped when it failed to start.
    """

    _gr_cell: Cell | None = None  # set by the runtime when it starts the instance

    @property
    def ctx(self) -> ActorContext:
        """The actor's context: its ref, spawn, tell, ask, timers and logger.

        Raises:
            UsageError: when used before the actor was started (in ``__init__``).
        """
        cell = self._gr_cell
        if cell is None:
            raise UsageError(
                f"{type(self).__name__}.ctx is not available in __init__; use it in on_start "
                "or a handler"
            )
        return cell.context()

    async def on_start(self) -> Ignore | None:
        """Called once before the first message; return :data:`IGNORE` to not run."""
        return None

    async def on_restart(self, error: ErrorInfo) -> None:
        """Called on the fresh instance after a failure, instead of ``on_start``."""
        await self.on_start()

    async def on_stop(self) -> None:
        """Called once after the last message."""

    def _gr_kill(self) -> None:
        """Runtime hook: the instance's stop ran out of time (supervisors kill their children)."""


def dispatch_table(cls: type[Actor]) -> dict[type, HandlerFn]:
    """The message-type-to-handler table of ``cls``, cached on the class.

    Raises:
        InvalidSpec: a handler's message type cannot be resolved, is not a
            frozen tagged Struct, or two handlers claim one type.
    """
    cached = cls.__dict__.get("_gr_dispatch")
    if cached is not None:
        return typing.cast(dict[type, HandlerFn], cached)
    table: dict[type, HandlerFn] = {}
    owner: dict[type, str] = {}
    seen_names: set[str] = set()
    for klass in cls.__mro__:
        for name, fn in vars(klass).items():
            if name in seen_names or not hasattr(fn, "__gr_handler__"):
                continue
            seen_names.add(name)
            for msg_type in _message_types(cls, name, fn):
                if msg_type in table:
                    raise InvalidSpec(
                        f"{cls.__qualname__}: {owner[msg_type]} and {name} both handle "
                        f"{msg_type.__qualname__}; one type has one handler"
                    )
                table[msg_type] = fn
                owner[msg_type] = name
        seen_names.update(vars(klass))
    cls._gr_dispatch = table  # type: ignore[attr-defined]
    return table


def resolve_handler(table: dict[type, HandlerFn], msg_type: type) -> HandlerFn | None:
    """The handler of ``msg_type``'s nearest base class in ``table``, cached in it.

    Called only when ``msg_type`` itself has no handler: exact matches stay one lookup.
    """
    for base in msg_type.__mro__[1:]:
        fn = table.get(base)
        if fn is not None:
            table[msg_type] = fn
            return fn
    return None


def _message_types(cls: type, name: str, fn: Any) -> tuple[type, ...]:
    explicit = fn.__gr_handler__
    if explicit is not None:
        found: tuple[type, ...] = explicit
    else:
        try:
            hints = typing.get_type_hints(fn)
        except Exception as exc:
            raise InvalidSpec(
                f"{cls.__qualname__}.{name}: cannot resolve the message type annotation ({exc}); "
                "define the message class at module level or use @handler(MessageType)"
            ) from exc
        params = list(fn.__code__.co_varnames[1 : fn.__code__.co_argcount])
        if not params or params[0] not in hints:
            raise InvalidSpec(
                f"{cls.__qualname__}.{name}: a handler takes one message parameter annotated "
                "with its type, e.g. `async def on_ping(self, msg: Ping)`"
            )
        hint = hints[params[0]]
        origin = typing.get_origin(hint)
        is_union = origin is typing.Union or isinstance(hint, types.UnionType)
        found = typing.get_args(hint) if is_union else (hint,)
    for t in found:
        config = getattr(t, "__struct_config__", None)
        if not (isinstance(t, type) and issubclass(t, msgspec.Struct)) or config is None:
            raise InvalidSpec(f"{cls.__qualname__}.{name}: {t!r} is not a greenroom.Message")
        if not config.frozen or config.tag is None:
            raise InvalidSpec(
                f"{cls.__qualname__}.{name}: {t.__qualname__} must be frozen and tagged; "
                "subclass greenroom.Message"
            )
    return found
