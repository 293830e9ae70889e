"""Delegation: how a ToolBox passes a narrowed grant on to another actor, and takes one."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from greenroom.tools._errors import GrantExpired, GrantRevoked, ToolRefused
from greenroom.tools._grant import Delegation, Grant
from greenroom.trace import new_id
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors import ActorRef
    from greenroom.tools._access import ToolAccess
    from greenroom.tools._toolbox import ToolBox, _Held

__all__ = ["Delegating"]


class Delegating:
    """The delegation methods of :class:`ToolBox` (a mixin; it holds no state of its own)."""

    __slots__ = ()

    if TYPE_CHECKING:
        name: str
        _access: ToolAccess
        _accepted: dict[int, str]

        def _resolve(self, name: str, under: Delegation | None) -> _Held: ...

    # -- delegation -------------------------------------------------------------

    def delegate(
        self, grant: Grant, *, to: str | ActorRef, under: Delegation | None = None
    ) -> Delegation:
        """Pass ``grant`` to actor ``to``: a token to send it in a message.

        ``grant`` must be covered by what this actor holds for the tool (its
        configured grant, or the delegation ``under``, or the one it accepted
        last); build it with ``held.narrowed(...)``. The holder calls
        :meth:`accept` with the token.

        Raises:
            ToolNotGranted: this actor holds no grant of the tool.
            GrantRevoked: the delegation ``under`` is not held.
            GrantExpired: the grant it holds has expired.
            GrantWidened: ``grant`` allows more than the grant it holds.
            InvalidGrant: ``grant`` does not fit the tool (see ToolRegistry.check_grant).
        """
        access = self._access
        held = self._resolve(grant.tool, under)
        now = access.clock()
        if held.grant.expires_at is not None and now >= held.grant.expires_at:
            raise GrantExpired(grant.tool, self.name, held.grant.expires_at, now)
        held.grant.check_covers(grant)
        access.registry.check_grant(grant)
        holder = to if isinstance(to, str) else to.name
        token = Delegation(id=new_id(), grant=grant, issuer=self.name, holder=holder)
        if held.delegation is None:
            access.issue(token, None, (self.name, grant.tool), held.grant)
        else:
            access.issue(token, held.delegation, None, None)
        logger.bind(actor=self.name, tool=grant.tool, holder=holder, event="tools.delegated").info(
            "{} delegated {} to {}", self.name, grant.tool, holder
        )
        return token

    def accept(self, delegation: Delegation) -> Grant:
        """Hold ``delegation`` (sent by its issuer) in this instance; returns its grant.

        Accepting twice is harmless. The grant is revoked when this instance
        stops or restarts.

        Raises:
            GrantRevoked: it was revoked, never issued here, is addressed to
                another actor, or is held by another instance.
        """
        box = cast("ToolBox", self)
        record = self._access.live(delegation.id)
        tool = delegation.grant.tool
        if record is None:
            raise GrantRevoked(tool, self.name, delegation.id, "it is unknown or was revoked")
        if record.delegation.holder != self.name:
            raise GrantRevoked(
                tool, self.name, delegation.id, f"it is addressed to {record.delegation.holder!r}"
            )
        if record.box is not None and record.box is not box:
            raise GrantRevoked(tool, self.name, delegation.id, "another instance holds it")
        record.box = box
        self._accepted[delegation.id] = record.delegation.grant.tool
        return record.delegation.grant

    def revoke(self, delegation: Delegation) -> None:
        """Revoke a delegation this actor issued, and every delegation made from it.

        Raises:
            ToolRefused: this actor did not issue it.
        """
        record = self._access.live(delegation.id)
        if record is None:
            return
        if record.delegation.issuer != self.name:
            raise ToolRefused(
                delegation.grant.tool,
                self.name,
                f"it did not issue delegation {delegation.id}",
                "only the issuer may revoke a delegation",
            )
        self._access.revoke_live(delegation.id, f"revoked by its issuer {self.name!r}")

    def _forget(self, delegation: int) -> None:
        self._accepted.pop(delegation, None)
