"""Extensions: what a runtime adds to every actor, without the actors layer knowing it.

The actors layer knows nothing of the store or of tools. A higher layer
plugs in through an :class:`Extension`: it checks each actor class when the
actor is spawned (a store checks the scopes the actor declares) and makes a
per-instance service the actor reaches with ``self.ctx.service(Kind)`` (a
store makes a contract-checked view). Services are made on first use and
released when the instance stops or is replaced by a restart, so a restart
starts from fresh grants and closed watches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from greenroom.actors._context import ActorContext
    from greenroom.actors._principal import Principal

__all__ = ["Extension"]


class Extension(Protocol):
    """A plug-in of a runtime: ``Runtime(extensions=[...])``."""

    @property
    def service_type(self) -> type:
        """The type actors ask for with ``self.ctx.service(service_type)``."""
        ...

    def check(self, principal: Principal) -> None:
        """Called when an actor is spawned, before it is made; raise a UsageError to refuse.

        ``principal`` is the actor's identity as the runtime bound it (its
        name, its class, whether the name counts); check rights against it,
        never against a name or class name the actor could choose.
        """
        ...

    def create(self, ctx: ActorContext) -> object:
        """The service for one actor instance; made on its first ``ctx.service`` call."""
        ...

    async def release(self, service: object) -> None:
        """The instance stopped or was replaced: release what the service holds."""
        ...
