"""Principals (who an actor is, as its runtime bound it at spawn) and the entries that name one.

The store's contracts and the tools' grants name who may do what with
*entries*, checked against the :class:`Principal` the runtime made, never
against a string the actor supplies:

- A class entry (the class, or a string that is that class in the module
  declaring the entry) matches an actor of exactly that class, by identity:
  not a subclass, nor another class with the same ``__qualname__``.
- A name entry (any other string) matches an actor of that name only if
  the application gave the name (``Principal.named``).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import FrameType

import msgspec

from greenroom.actors._actor import Actor

__all__ = ["Entry", "Principal"]


class Principal(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Who an actor is: its name, its class, and whether its name was the application's to give.

    Made by the runtime at spawn and kept across restarts (``self.ctx.principal``);
    extensions (``StoreAccess``, ``ToolAccess``) check it. An actor cannot change
    it through the API, by the name it spawns under or by its ``__qualname__``.

    Attributes:
        name: the actor's name, unique in its runtime (``"desk/workers/3"``).
        actor_type: the class the runtime spawned; ``None`` for a principal
            that is not an actor (a :class:`~greenroom.store.StoreView` made
            by hand, in a test or a script).
        named: whether entries naming the actor by its *name* apply to it:
            True when the application spawned it (``Runtime.spawn``, a
            ``SupervisorRef`` call, or a spec it passed, from outside any
            actor's code); False when an actor's code did (``ctx.spawn``, or
            those calls from a handler, hook or task of an actor), since that
            actor chose the name. Class entries apply either way. Default
            True (for principals made by hand).
    """

    name: str
    actor_type: type | None = None
    named: bool = True

    def __str__(self) -> str:
        cls = self.actor_type
        if cls is None:
            return f"actor {self.name!r}"
        return f"actor {self.name!r} ({_path(cls)})"


def _path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def declaring_namespace() -> Mapping[str, object] | None:
    """The globals of the first caller outside greenroom: the module declaring an entry."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if not (isinstance(module, str) and module.split(".")[0] == "greenroom"):
            return frame.f_globals
        frame = frame.f_back
    return None


class Entry:
    """An owner or reader of a scope, or the key of a grant: an actor class or an actor name.

    Made with :meth:`declared` where the scope or grants are declared, so a
    string like ``"DeskWorker"`` is looked up later (at spawn, once the class
    exists) in the module that declared it.
    """

    __slots__ = ("_class", "_namespace", "text")

    def __init__(self, given: str | type, namespace: Mapping[str, object] | None) -> None:
        self._class = given if isinstance(given, type) else None
        self._namespace = namespace
        self.text = given.__qualname__ if isinstance(given, type) else given

    @classmethod
    def declared(cls, given: str | type) -> Entry:
        """An entry declared by the caller's module (the first caller outside greenroom)."""
        return cls(given, None if isinstance(given, type) else declaring_namespace())

    def actor_class(self) -> type | None:
        """The class the entry names, or ``None`` if it names an actor by name.

        A string names a class when, in the declaring module, it is an
        :class:`~greenroom.Actor` subclass (``"Writer"``, ``"Outer.Inner"``).
        """
        if self._class is not None:
            return self._class
        namespace = self._namespace
        if namespace is None:
            return None
        head, *rest = self.text.split(".")
        found = namespace.get(head)
        for part in rest:
            if not isinstance(found, type):
                return None  # only walk through classes: a module could import on getattr
            found = getattr(found, part, None)
        if isinstance(found, type) and issubclass(found, Actor):
            return found
        return None

    def matches(self, principal: Principal) -> bool:
        """Whether this entry names ``principal`` (by class identity, or by a name it was given)."""
        cls = self.actor_class()
        if cls is not None:
            return principal.actor_type is cls
        return principal.named and principal.name == self.text

    def key(self) -> object:
        """What the entry stands for: its class, or its name (for equality of scopes)."""
        cls = self.actor_class()
        return cls if cls is not None else ("name", self.text)

    def why_not(self, principal: Principal) -> str | None:
        """Why an entry that looks like ``principal`` does not match it, if it looks like it."""
        cls = self.actor_class()
        own = principal.actor_type
        if (
            cls is not None
            and own is not None
            and own is not cls
            and (own.__qualname__ == cls.__qualname__ or self.text == own.__qualname__)
        ):
            return f"{self.text!r} is the class {_path(cls)}, not {_path(own)}"
        if cls is None and principal.name == self.text and not principal.named:
            return (
                f"{self.text!r} names an actor by name, and an actor (not the application) "
                f"spawned {principal.name!r}, so the name is not its to claim"
            )
        if cls is None and own is not None and self.text == own.__qualname__:
            return (
                f"{self.text!r} is not a class in the module that declared it, so it names an "
                f"actor by name, not the class {_path(own)}"
            )
        return None

    def __repr__(self) -> str:
        return f"Entry({self.text!r})"
