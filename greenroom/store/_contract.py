"""The read/write contract rules of scopes, checked against the principal the runtime bound.

A principal (:class:`~greenroom.actors.Principal`) is who an actor is, as
its runtime bound it at spawn; the rules compare it with a scope's owner and
readers by class identity or by a name the application gave (see
:class:`Scope`), never by a string the actor supplies.
"""

from __future__ import annotations

from collections.abc import Iterable

from greenroom.actors import Principal
from greenroom.store._errors import ContractViolation
from greenroom.store._scope import Scope
from greenroom.trace._logging import logger

__all__ = ["Principal", "check_declaration"]


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
            if access == "declare write" and not scope.owned_by(principal):
                raise violation(
                    principal,
                    scope.name,
                    None,
                    access,
                    f"only its owner {scope.owner!r} may write it"
                    + _because(scope, principal, True),
                    "send the owner a message asking it to write, or move the write "
                    "to the owning actor",
                )
            if access == "declare read" and not scope.readable_by(principal):
                allowed = ", ".join(sorted({scope.owner, *scope.readers}))
                raise violation(
                    principal,
                    scope.name,
                    None,
                    access,
                    f"it is readable only by {allowed}{_because(scope, principal, False)}",
                    f"add the class of {principal.name!r} to the readers of {scope.name!r} "
                    "(or its name, if the application spawns it under that name)",
                )


def _because(scope: Scope[object], principal: Principal, write: bool) -> str:
    reason = scope._why_not(principal, write=write)
    return "" if reason is None else f" ({reason})"
