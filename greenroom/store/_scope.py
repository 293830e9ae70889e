"""Scope: a named, typed part of the store with one owner and its readers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

import msgspec

from greenroom.actors import Principal
from greenroom.actors._principal import Entry
from greenroom.store._errors import InvalidKey, InvalidScope

__all__ = ["Scope", "check_key"]

T_co = TypeVar("T_co", covariant=True)
_Class = type  # the parameter `type` of Scope.__init__ shadows the builtin


def _type_name(tp: object) -> str:
    return tp.__qualname__ if isinstance(tp, type) else repr(tp)


class Scope(Generic[T_co]):
    """A named part of the store: a msgspec type, one owner, and its readers.

    ``owner`` is the one actor that may write (and delete) the scope's keys.
    ``readers`` lists who may read and watch; the owner may always read.
    Each is given as:

    - an actor class (``owner=Writer``), or a string that is the name of an
      actor class in the module declaring the scope (``owner="Writer"``,
      looked up when actors are spawned, so the class may come later in the
      module). It names exactly that class object: another class with the
      same ``__qualname__``, or a subclass, is not the owner.
    - any other string: an actor's name (``readers=["auditor"]``). It names
      the actor the *application* spawned under that name, never one an
      actor spawned (see :class:`~greenroom.actors.Principal`).

    Values are validated against ``type`` on write and decoded into it on read.

    Two scopes are equal when name, type, owner and readers are equal (a
    class entry compares by the class it names). A scope is immutable;
    declare it once at module level beside the actors that own and read it.

    Raises :class:`InvalidScope` when the name is empty, the type cannot be
    encoded by msgspec, the owner is missing or not a name or class, or
    ``readers`` is not a collection of names or classes.
    """

    __slots__ = ("_decoder", "_hash", "_name", "_owner", "_readers", "_type")

    _name: str
    _type: type[T_co]
    _owner: Entry
    _readers: tuple[Entry, ...]
    _decoder: msgspec.msgpack.Decoder[T_co]
    _hash: int

    def __init__(
        self,
        name: str,
        type: type[T_co],
        owner: str | type,
        readers: Iterable[str | type] = (),
    ) -> None:
        if not isinstance(name, str) or not name or name != name.strip():
            raise InvalidScope(
                repr(name) if not isinstance(name, str) else name,
                "the name must be a non-empty str without surrounding spaces",
                "name the scope like 'user_prefs'",
            )
        try:
            decoder: msgspec.msgpack.Decoder[T_co] = msgspec.msgpack.Decoder(type)
        except TypeError as error:
            raise InvalidScope(
                name,
                f"msgspec cannot encode values of type {_type_name(type)} ({error})",
                "use a msgspec Struct or builtin types as the scope's type",
            ) from error
        if not isinstance(owner, str | _Class) or owner == "":
            raise InvalidScope(
                name,
                f"the owner must be one actor name or actor class, got {owner!r}",
                "pass owner='writer' or owner=WriterActor; a scope has exactly one owner",
            )
        if isinstance(readers, str | bytes | _Class) or not isinstance(readers, Iterable):
            raise InvalidScope(
                name,
                f"readers must be a list of actor names or classes, got {readers!r}",
                f"pass readers=[{readers!r}]",
            )
        reader_entries: dict[str, Entry] = {}
        for reader in readers:
            if not isinstance(reader, str | _Class) or reader == "":
                raise InvalidScope(
                    name,
                    f"a reader must be an actor name or actor class, got {reader!r}",
                    "list readers as names ('ctx_builder') or classes (ContextBuilder)",
                )
            entry = Entry.declared(reader)
            reader_entries.setdefault(entry.text, entry)
        set_ = object.__setattr__
        set_(self, "_name", name)
        set_(self, "_type", type)
        set_(self, "_owner", Entry.declared(owner))
        set_(self, "_readers", tuple(reader_entries.values()))
        set_(self, "_decoder", decoder)
        set_(self, "_hash", hash(name))

    @property
    def name(self) -> str:
        """The scope's name, unique within a store."""
        return self._name

    @property
    def type(self) -> type[T_co]:
        """The msgspec type every value of the scope has."""
        return self._type

    @property
    def owner(self) -> str:
        """The owner as written: an actor name, or an actor class's ``__qualname__``."""
        return self._owner.text

    @property
    def readers(self) -> frozenset[str]:
        """The readers besides the owner, as written (actor names or class qualnames)."""
        return frozenset(entry.text for entry in self._readers)

    def owned_by(self, principal: Principal) -> bool:
        """Whether ``principal`` is the scope's owner, the only one that may write it."""
        return self._owner.matches(principal)

    def readable_by(self, principal: Principal) -> bool:
        """Whether ``principal`` is the owner or one of the readers."""
        return self._owner.matches(principal) or any(r.matches(principal) for r in self._readers)

    def _why_not(self, principal: Principal, *, write: bool) -> str | None:
        """Why an entry that looks like ``principal`` does not name it (for error messages)."""
        entries = (self._owner,) if write else (self._owner, *self._readers)
        for entry in entries:
            reason = entry.why_not(principal)
            if reason is not None:
                return reason
        return None

    @property
    def type_name(self) -> str:
        """A readable name of the scope's type, for messages."""
        return _type_name(self._type)

    @property
    def decoder(self) -> msgspec.msgpack.Decoder[T_co]:
        """The msgpack decoder for the scope's type (built once)."""
        return self._decoder

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Scope is immutable; cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Scope):
            return NotImplemented
        return (
            self._name == other._name
            and self._type == other._type
            and self._owner.key() == other._owner.key()
            and {r.key() for r in self._readers} == {r.key() for r in other._readers}
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        readers = ", ".join(sorted(self.readers))
        return f"Scope({self._name!r}, {self.type_name}, owner={self.owner!r}, readers=[{readers}])"


def check_key(scope: Scope[object], key: object) -> str:
    """Return ``key`` if it is a non-empty str; raise :class:`InvalidKey` otherwise."""
    if type(key) is not str or not key:
        raise InvalidKey(scope.name, key)
    return key
