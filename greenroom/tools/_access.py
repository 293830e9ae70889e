"""Tools as an extension of a runtime: grants checked at spawn, a ToolBox per actor.

::

    registry = ToolRegistry([add, Fetch(http)])
    access = ToolAccess(registry, grants={
        "Researcher": ["add", Grant("fetch", budget=20)],     # the class Researcher
        "auditor": [Grant("fetch", narrow={"host": ("audit.internal",)})],  # by name
    })
    async with gr.Runtime(extensions=[access]) as rt: ...

A key names an actor class (the class, or its name in the module building
the access: exactly that class object, not another of the same
``__qualname__``) or an actor's name (only for an actor the application
spawned under it, never one an actor spawned); see ``Principal``. When an
actor is spawned, the grants that name its principal are checked against
the registry: granting a tool nobody registered, or narrowing a field its
Input lacks, refuses the spawn with :class:`InvalidGrant`. In a handler,
``self.ctx.service(ToolBox)`` is the actor's tool box.

Budgets and restarts, the rules:

- A configured grant's budget is counted per actor *name* and tool, in this
  :class:`ToolAccess`, and carries on across restarts: a crash loop cannot
  refill a budget. (A new ToolAccess, as in a new process, starts at zero.)
- A delegated grant lives only as long as the holder instance that accepted
  it: a restart or stop of the holder revokes it, and every delegation made
  from it. Its count goes with it.
- A call under a delegation spends one call of the delegation and of every
  grant it was narrowed from, up to the issuer's configured grant, so
  delegating cannot multiply a budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from greenroom.tools._call import Interceptor, ToolCall
from greenroom.tools._errors import BudgetExhausted, InvalidGrant
from greenroom.tools._grant import Delegation, Grant, GrantTable
from greenroom.tools._registry import ToolRegistry
from greenroom.tools._toolbox import ToolBox
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors import ActorContext, Principal
    from greenroom.tools._approval import ApprovalGate

__all__ = ["ToolAccess"]


class LiveDelegation:
    """A delegation the access holds live, with what its budget chain needs."""

    __slots__ = ("box", "children", "delegation", "parent", "root_grant", "root_key", "used")

    def __init__(
        self,
        delegation: Delegation,
        parent: int | None,
        root_key: tuple[str, str] | None,
        root_grant: Grant | None,
    ) -> None:
        self.delegation = delegation
        self.parent = parent
        self.root_key = root_key  # the issuer's configured grant, for a delegation made from one
        self.root_grant = root_grant
        self.box: ToolBox | None = None  # the holder instance that accepted it
        self.children: set[int] = set()
        self.used = 0


class ToolAccess:
    """A runtime extension that gives actors their granted tools.

    Args:
        registry: the tools this access knows.
        grants: per actor class or actor name (see above), the grants it
            holds. A bare tool name is ``Grant(name)``: any arguments, no limit.
        interceptors: wrap every granted, validated call (outermost first);
            see :class:`Interceptor`. A side-effect :class:`Ledger` goes last.
        approvals: the :class:`ApprovalGate` that parks the calls needing
            approval, before the interceptors; required when a granted tool
            or a grant requires approval.
        on_call: receives the :class:`ToolCall` record of every call, made or
            refused. An exception it raises is logged, not propagated.
        clock: wall-clock time in seconds since the epoch, for expiry
            (default ``time.time``).

    Raises:
        InvalidGrant: a grant entry is not a Grant or a tool name, or a key
            is not an actor class or name.
    """

    service_type = ToolBox

    def __init__(
        self,
        registry: ToolRegistry,
        *,
        grants: Mapping[str | type, Iterable[Grant | str]] | None = None,
        interceptors: Sequence[Interceptor] = (),
        approvals: ApprovalGate | None = None,
        on_call: Callable[[ToolCall], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry
        self.interceptors: tuple[Interceptor, ...] = tuple(interceptors)
        self.approvals = approvals
        self.on_call = on_call
        self.clock = clock
        self._grants = GrantTable(grants)
        self._used: dict[tuple[str, str], int] = {}
        self._live: dict[int, LiveDelegation] = {}

    # -- the Extension protocol ------------------------------------------

    def check(self, principal: Principal) -> None:
        """Refuse the spawn of an actor whose grants the registry cannot honour.

        Raises:
            InvalidGrant: a grant names a tool that is not registered, narrows
                a field the tool's Input lacks or allows a value it never
                takes, two grants of one tool apply to the actor, or a
                granted call requires approval and there is no gate.
            InvalidTool: a registered tool's undo tool is missing.
        """
        self.registry.check()
        for grant in self.configured(principal).values():
            self.registry.check_grant(grant)
            tool = self.registry.get(grant.tool)
            needs = grant.requires_approval or (tool is not None and tool.requires_approval)
            if needs and self.approvals is None:
                raise InvalidGrant(
                    grant.tool,
                    f"calls of it by {principal.name!r} require approval, and no approval gate "
                    "is set",
                    "pass ToolAccess(approvals=ApprovalGate(store))",
                )

    def create(self, ctx: ActorContext) -> ToolBox:
        """The tool box of one actor instance."""
        return ToolBox(self, ctx)

    async def release(self, service: object) -> None:
        """Revoke the delegations the stopped or restarted instance accepted."""
        if isinstance(service, ToolBox):
            for delegation in list(service._accepted):
                self.revoke_live(delegation, f"its holder {service.name!r} stopped or restarted")

    # -- bookkeeping, for ToolBox ----------------------------------------

    def configured(self, principal: Principal) -> dict[str, Grant]:
        """The configured grants of an actor, by tool, for the principal the runtime bound.

        Raises:
            InvalidGrant: two grants of one tool apply to the actor.
        """
        return self._grants.of(principal)

    def charge_call(self, actor: str, tool: str, grant: Grant, delegation: int | None) -> None:
        """Spend one call of ``grant`` (and, for a delegation, of every grant above it).

        Nothing is spent unless every budget on the chain has a call left.

        Raises:
            BudgetExhausted: a budget on the chain is spent.
        """
        if delegation is None:
            key = (actor, tool)
            if grant.budget is not None and self._used.get(key, 0) >= grant.budget:
                raise BudgetExhausted(tool, actor, grant.budget)
            self._used[key] = self._used.get(key, 0) + 1
            return
        links = self.chain(delegation)
        for link in links:
            budget = link.delegation.grant.budget
            if budget is not None and link.used >= budget:
                raise BudgetExhausted(tool, actor, budget)
        root = links[-1]
        if root.root_key is not None and root.root_grant is not None:
            budget = root.root_grant.budget
            if budget is not None and self._used.get(root.root_key, 0) >= budget:
                raise BudgetExhausted(tool, actor, budget)
            self._used[root.root_key] = self._used.get(root.root_key, 0) + 1
        for link in links:
            link.used += 1

    def live(self, delegation: int) -> LiveDelegation | None:
        """The live record of a delegation, ``None`` once revoked."""
        return self._live.get(delegation)

    def issue(
        self,
        delegation: Delegation,
        parent: int | None,
        root_key: tuple[str, str] | None,
        root_grant: Grant | None,
    ) -> None:
        """Hold a new delegation live."""
        self._live[delegation.id] = LiveDelegation(delegation, parent, root_key, root_grant)
        if parent is not None:
            self._live[parent].children.add(delegation.id)

    def revoke_live(self, delegation: int, reason: str) -> None:
        """Revoke a delegation and every delegation made from it."""
        pending = [delegation]
        while pending:
            record = self._live.pop(pending.pop(), None)
            if record is None:
                continue
            if record.parent is not None and (parent := self._live.get(record.parent)):
                parent.children.discard(record.delegation.id)
            if record.box is not None:
                record.box._forget(record.delegation.id)
            pending.extend(record.children)
            logger.bind(
                actor=record.delegation.holder,
                tool=record.delegation.grant.tool,
                delegation=record.delegation.id,
                event="tools.delegation_revoked",
            ).info("delegation {} revoked: {}", record.delegation.id, reason)

    def chain(self, delegation: int) -> list[LiveDelegation]:
        """The delegation and every live delegation it was narrowed from, innermost first."""
        links: list[LiveDelegation] = []
        current: int | None = delegation
        while current is not None:
            record = self._live.get(current)
            if record is None:
                break
            links.append(record)
            current = record.parent
        return links
