"""A ref to a supervisor, with OTP's child management calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from greenroom.actors._cell import acting
from greenroom.actors._ref import ActorRef

if TYPE_CHECKING:
    from greenroom.actors._spec import Spec
    from greenroom.actors._supervisor import ChildInfo

__all__ = ["SupervisorRef"]


class SupervisorRef(ActorRef):
    """A ref to a supervisor. Each call runs in the supervisor's own task, in order
    with the failures it handles, and waits at most ``timeout`` seconds.

    Raises (every method): ActorStopped if the supervisor is stopped;
    AskTimeout past ``timeout``; InvalidSpec for an unknown child id or a
    child in the wrong state.
    """

    __slots__ = ()

    async def _call(self, fn: Any, timeout: float) -> Any:
        cell = ActorRef._target(self, None)
        return await cell.system.call_supervisor(cell, fn, timeout)

    async def start_child(self, spec: Spec, *, timeout: float = 5.0) -> Any:
        """Start a new child from ``spec``; its ref (to a stopped actor if it returned IGNORE).

        Called from an actor's code, the child's principal is not ``named``:
        only entries naming its class apply to it (see ``Principal``).
        Also raises ChildStartFailed when its ``on_start`` raised.
        """
        named = acting.get() is None
        return await self._call(lambda sup: sup.start_child(spec, named=named), timeout)

    async def terminate_child(self, child_id: str, *, timeout: float = 30.0) -> None:
        """Stop a child (a temporary child is also forgotten)."""
        await self._call(lambda sup: sup.terminate_child(child_id), timeout)

    async def restart_child(self, child_id: str, *, timeout: float = 5.0) -> Any:
        """Start a stopped child again from its spec; its new ref."""
        return await self._call(lambda sup: sup.restart_child(child_id), timeout)

    async def delete_child(self, child_id: str, *, timeout: float = 5.0) -> None:
        """Forget the spec of a stopped child."""
        await self._call(lambda sup: sup.delete_child(child_id), timeout)

    async def which_children(self, *, timeout: float = 5.0) -> list[ChildInfo]:
        """The children in start order, with status, failures and mailbox depth."""
        result: list[ChildInfo] = await self._call(lambda sup: sup.which_children(), timeout)
        return result

    async def resize(self, size: int, *, timeout: float = 30.0) -> None:
        """For a pool: grow or shrink to ``size`` workers."""
        await self._call(lambda sup: sup.resize(size), timeout)
