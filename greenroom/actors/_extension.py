"""Extensions: what a runtime adds to every actor, without the actors layer knowing it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from greenroom.actors._context import ActorContext
    from greenroom.actors._principal import Principal

__all__ = ["Extension"]


class Extension(Protocol):
    """A plug-in of a runtime (``Runtime(extensions=[...])``) from a higher layer.

    It checks each actor at spawn (a store checks the scopes the actor
    declares) and makes a per-instance service, reached with
    ``self.ctx.service(Kind)`` (a store makes a contract-checked view).
    Services are made on first use and released when the instance stops or
    is replaced by a restart, so a restart starts from fresh grants and
    closed watches.
    """

    @property
    def service_type(self) -> type:
        """The type actors ask for with ``self.ctx.service(service_type)``."""
        ...

    def check(self, principal: Principal) -> None:
        """Called at spawn, before the actor is made; raise a UsageError to refuse.

        Check rights against ``principal``, never against a name or class
        name the actor could choose.
        """
        ...

    def create(self, ctx: ActorContext) -> object:
        """The service for one actor instance; made on its first ``ctx.service`` call."""
        ...

    async def release(self, service: object) -> None:
        """The instance stopped or was replaced: release what the service holds."""
        ...
