"""Grants: permission to call one tool, maybe narrowed, expiring, and with a call budget.

A grant is plain, validated data::

    Grant("fetch")                                      # any arguments, no limit
    Grant("fetch", narrow={"host": ("api.example.com",)}, budget=10, expires_at=t)

``narrow`` maps a top-level field of the tool's ``Input`` to the values it
may take: a tuple of JSON scalars (str, int, float, bool, None). One value
fixes the field. Values compare as JSON does, so ``True`` is not ``1`` and
``1`` is ``1.0``; an enum field compares by its value. Fields not named are
unrestricted. ``expires_at`` is wall-clock seconds since the epoch
(``time.time()``), so a grant means the same in every process. ``budget``
is how many calls may reach the tool; ``None`` means no limit.
``requires_approval`` parks every call made under the grant until a person
approves it (see ``ApprovalGate``), whether or not the tool itself asks for it.

:meth:`Grant.narrowed` derives a grant for delegation; it can only narrow.

Who holds a grant is said by the key it is configured under in
``ToolAccess(grants={key: [...]})``, checked against the principal the
runtime bound to the actor at spawn (see :class:`GrantTable`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeAlias

import msgspec

from greenroom.actors import Principal
from greenroom.actors._principal import Entry
from greenroom.tools._errors import GrantWidened, InvalidGrant
from greenroom.trace._logging import logger

__all__ = ["Delegation", "Grant", "GrantTable", "Scalar"]

Scalar: TypeAlias = str | int | float | bool | None
"""A value a narrowed grant can allow: a JSON scalar."""


def _kind(value: object) -> tuple[str, object]:
    # JSON equality: bool is its own kind, int and float are one kind (1 == 1.0).
    if value is None:
        return ("null", None)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    return ("other", repr(value))


class Grant(msgspec.Struct, frozen=True):
    """Permission to call tool ``tool``, maybe narrowed, expiring, and with a call budget.

    Raises:
        InvalidGrant: an empty tool name, a narrowing that is not a mapping
            of field names to non-empty tuples of JSON scalars, a NaN, a
            negative budget, or an ``expires_at`` that is not a finite number.
    """

    tool: str
    narrow: dict[str, tuple[Scalar, ...]] = {}
    expires_at: float | None = None
    budget: int | None = None
    requires_approval: bool = False

    def __post_init__(self) -> None:
        tool = self.tool
        if not isinstance(tool, str) or not tool:
            raise InvalidGrant(repr(tool), "the tool name is empty", "name a registered tool")
        if not isinstance(self.narrow, Mapping):
            raise InvalidGrant(
                tool,
                f"narrow must map field names to allowed values, got {self.narrow!r}",
                'write narrow={"field": ("value", ...)}',
            )
        narrow: dict[str, tuple[Scalar, ...]] = {}
        for field, values in self.narrow.items():
            if not isinstance(field, str) or not field:
                raise InvalidGrant(tool, f"narrow names a field {field!r}", "use field names")
            if not isinstance(values, tuple | list) or not values:
                raise InvalidGrant(
                    tool,
                    f"the allowed values of {field!r} must be a non-empty tuple, got {values!r}",
                    f'write narrow={{"{field}": ("value",)}}; one value fixes the field',
                )
            kept: list[Scalar] = []
            for value in values:
                if not isinstance(value, str | int | float | bool | None) or (
                    isinstance(value, float) and math.isnan(value)
                ):
                    raise InvalidGrant(
                        tool,
                        f"{field!r} allows {value!r}, which is not a JSON scalar",
                        "allow only str, int, float, bool or None values",
                    )
                if _kind(value) not in {_kind(v) for v in kept}:
                    kept.append(value)
            narrow[field] = tuple(kept)
        msgspec.structs.force_setattr(self, "narrow", narrow)
        budget = self.budget
        if budget is not None and (
            not isinstance(budget, int) or isinstance(budget, bool) or budget < 0
        ):
            raise InvalidGrant(
                tool, f"budget must be an int >= 0 or None, got {budget!r}", "pass a call count"
            )
        expires = self.expires_at
        if expires is not None and (
            not isinstance(expires, int | float)
            or isinstance(expires, bool)
            or not math.isfinite(expires)
        ):
            raise InvalidGrant(
                tool,
                f"expires_at must be seconds since the epoch, got {expires!r}",
                "pass time.time() + seconds",
            )
        if not isinstance(self.requires_approval, bool):
            raise InvalidGrant(
                tool,
                f"requires_approval must be a bool, got {self.requires_approval!r}",
                "pass True or False",
            )

    def allows(self, field: str, value: object) -> bool:
        """Whether ``value`` (a builtin, as ``msgspec.to_builtins`` makes) may be ``field``."""
        allowed = self.narrow.get(field)
        return allowed is None or _kind(value) in {_kind(v) for v in allowed}

    def first_disallowed(self, input: msgspec.Struct) -> tuple[str, object] | None:
        """The first narrowed field of ``input`` whose value is not allowed, with that value."""
        for field in self.narrow:
            value = msgspec.to_builtins(getattr(input, field, None))
            if not self.allows(field, value):
                return field, value
        return None

    def covers(self, other: Grant) -> bool:
        """Whether ``other`` allows nothing this grant does not (same tool, narrower or equal)."""
        return self._widening(other) is None

    def narrowed(
        self,
        *,
        narrow: Mapping[str, Sequence[Scalar]] | None = None,
        expires_at: float | None = None,
        budget: int | None = None,
        requires_approval: bool | None = None,
    ) -> Grant:
        """A grant that allows at most what this one does.

        ``narrow`` adds or replaces the allowed values of the fields it
        names (others keep this grant's); ``expires_at``, ``budget`` and
        ``requires_approval`` replace this grant's when given, and are
        inherited otherwise. Dropping a required approval widens.

        Raises:
            GrantWidened: a field would allow a value this grant does not, or
                the expiry is later or the budget larger than this grant's.
            InvalidGrant: the new values are malformed.
        """
        merged = dict(self.narrow)
        for field, values in (narrow or {}).items():
            merged[field] = tuple(values)
        child = Grant(
            self.tool,
            merged,
            self.expires_at if expires_at is None else expires_at,
            self.budget if budget is None else budget,
            self.requires_approval if requires_approval is None else requires_approval,
        )
        self.check_covers(child)
        return child

    def check_covers(self, other: Grant) -> None:
        """Raise unless this grant covers ``other``.

        Raises:
            GrantWidened: ``other`` allows something this grant does not.
        """
        reason = self._widening(other)
        if reason is not None:
            raise GrantWidened(
                self.tool,
                f"a delegated grant can only narrow, but {reason}",
                "delegate a subset of what you hold",
            )

    def _widening(self, other: Grant) -> str | None:
        if other.tool != self.tool:
            return f"it is for tool {other.tool!r}"
        for field, allowed in self.narrow.items():
            theirs = other.narrow.get(field)
            if theirs is None:
                return f"it lifts the restriction of {field!r} to {allowed!r}"
            extra = [v for v in theirs if not self.allows(field, v)]
            if extra:
                return f"it allows {field!r} to be {extra!r}, outside {allowed!r}"
        if self.expires_at is not None and (
            other.expires_at is None or other.expires_at > self.expires_at
        ):
            return f"it expires at {other.expires_at!r}, after {self.expires_at!r}"
        if self.budget is not None and (other.budget is None or other.budget > self.budget):
            return f"its budget {other.budget!r} is larger than {self.budget!r}"
        if self.requires_approval and not other.requires_approval:
            return "it drops the approval the grant requires"
        return None


class Delegation(msgspec.Struct, frozen=True, kw_only=True):
    """A grant passed from ``issuer`` to ``holder``: a token to send in a message.

    It is valid only while the :class:`ToolAccess` that issued it holds it
    live: the holder's ``accept`` binds it to the holder's current instance,
    and a restart or stop of that instance revokes it (and every delegation
    made from it). A forged or copied token gives nothing: only its ``id``
    is looked up, the grant and holder are the ones recorded at issue.
    """

    id: int
    grant: Grant
    issuer: str
    holder: str


class GrantTable:
    """The configured grants of a ``ToolAccess``, by who holds them. Internal to greenroom.

    A key is an actor class, or a string: the name of an actor class in the
    module that builds the ``ToolAccess`` (``"Researcher"``; it names
    exactly that class object, not another class of the same
    ``__qualname__``), or else an actor's name (``"auditor"``), which counts
    only for an actor the application spawned under that name (see
    :class:`~greenroom.actors.Principal`). A bare tool name is ``Grant(name)``.

    Raises:
        InvalidGrant: a key is not a class or a non-empty str, or an entry is
            not a Grant or a tool name.
    """

    __slots__ = ("_entries",)

    def __init__(self, grants: Mapping[str | type, Iterable[Grant | str]] | None) -> None:
        self._entries: list[tuple[Entry, tuple[Grant, ...]]] = []
        for holder, entries in (grants or {}).items():
            if not isinstance(holder, str | type) or holder == "":
                raise InvalidGrant(
                    repr(holder),
                    f"grants are keyed by an actor class or name, got {holder!r}",
                    'key them like grants={Researcher: [...], "auditor": [...]}',
                )
            made: list[Grant] = []
            for entry in entries:
                if isinstance(entry, str):
                    entry = Grant(entry)
                if not isinstance(entry, Grant):
                    raise InvalidGrant(
                        repr(entry),
                        f"a grant of {holder!r} is a {type(entry).__name__}",
                        "grant Grant(...) objects or tool names",
                    )
                made.append(entry)
            self._entries.append((Entry.declared(holder), tuple(made)))

    def of(self, principal: Principal) -> dict[str, Grant]:
        """The grants that apply to ``principal``, by tool.

        A key that looks like the principal but does not name it (a class of
        the same ``__qualname__``, a name an actor gave) is logged as a
        warning, with why.

        Raises:
            InvalidGrant: two grants of one tool apply to the principal.
        """
        found: dict[str, Grant] = {}
        for entry, grants in self._entries:
            if not entry.matches(principal):
                reason = entry.why_not(principal)
                if reason is not None:
                    logger.bind(
                        actor=principal.name, key=entry.text, event="tools.grant_not_applied"
                    ).warning(
                        "grants under {!r} do not apply to {}: {}", entry.text, principal, reason
                    )
                continue
            for grant in grants:
                if grant.tool in found:
                    raise InvalidGrant(
                        grant.tool,
                        f"{principal} holds two grants of it",
                        "grant each tool once per actor, by name or by class",
                    )
                found[grant.tool] = grant
        return found
