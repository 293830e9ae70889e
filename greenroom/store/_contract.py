"""Principals and the read/write contract rules of scopes."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from greenroom.store._errors import ContractViolation
from greenroom.store._scope import Scope
from greenroom.trace._logging import logger

__all__ = ["Principal", "check_declaration"]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who accesses the store: an actor's name and its class's ``__qualname__``.

    A principal matches a scope's owner or reader entry when either its name
    or its class qualname equals the entry, so scopes can name one actor or a
    whole actor class.
    """

    name: str
    class_qualname: str | None = None

    def matches(self, entry: str) -> bool:
        """Whether ``entry`` (an owner or reader of a scope) names this principal."""
        return entry == self.name or (
            self.class_qualname is not None and entry == self.class_qualname
        )

    def may_write(self, scope: Scope[object]) -> bool:
        """Whether this principal owns ``scope``, the only way to write it."""
        return self.matches(scope.owner)

    def may_read(self, scope: Scope[object]) -> bool:
        """Whether this principal owns or is a reader of ``scope``."""
        return self.matches(scope.owner) or any(self.matches(r) for r in scope.readers)

    def __str__(self) -> str:
        if self.class_qualname is None or self.class_qualname == self.name:
            return f"actor {self.name!r}"
        return f"actor {self.name!r} ({self.class_qualname})"


def violation(
    principal: Principal,
    scope: str,
    key: str | None,
    access: str,
    reason: str,
    fix: str,
) -> ContractViolation:
    """Build a :class:`ContractViolation` and log it with actor, scope and key."""
    error = ContractViolation(principal.name, scope, key, access, reason, fix)
    logger.bind(
        actor=principal.name, scope=scope, key=key, access=access, event="store.contract_violation"
    ).warning("{}", error)
    return error


def check_declaration(
    principal: Principal,
    reads: Iterable[Scope[object]],
    writes: Iterable[Scope[object]],
) -> None:
    """Check that ``principal`` may read every scope in ``reads`` and write every one in ``writes``.

    The runtime calls this when an actor is spawned, before it runs. A write
    is allowed only to the scope's owner; a read to the owner and the scope's
    readers. Declaring two different scopes with the same name is refused too.

    Raises :class:`ContractViolation` (logged with actor and scope) naming
    the first scope the declaration may not use.
    """
    seen: dict[str, Scope[object]] = {}
    for access, scopes in (("declare write", writes), ("declare read", reads)):
        for scope in scopes:
            if not isinstance(scope, Scope):
                raise violation(
                    principal,
                    repr(scope),
                    None,
                    access,
                    f"expected a Scope, got {type(scope).__name__}",
                    "declare scopes as Scope objects, e.g. reads=[PREFS]",
                )
            other = seen.setdefault(scope.name, scope)
            if other != scope:
                raise violation(
                    principal,
                    scope.name,
                    None,
                    access,
                    f"two different scopes are named {scope.name!r}: {other!r} and {scope!r}",
                    "declare one Scope object per name and import it where it is used",
                )
            if access == "declare write" and not principal.may_write(scope):
                raise violation(
                    principal,
                    scope.name,
                    None,
                    access,
                    f"only its owner {scope.owner!r} may write it",
                    "send the owner a message asking it to write, or move the write "
                    "to the owning actor",
                )
            if access == "declare read" and not principal.may_read(scope):
                allowed = ", ".join(sorted({scope.owner, *scope.readers}))
                raise violation(
                    principal,
                    scope.name,
                    None,
                    access,
                    f"it is readable only by {allowed}",
                    f"add {principal.name!r} (or its class) to the readers of {scope.name!r}",
                )
