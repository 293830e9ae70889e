"""A ref to a supervisor, with OTP's child management calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from greenroom.actors._cell import acting
from greenroom.actors._ref import ActorRef

if TYPE_CHECKING:
    from greenroom.actors._spec import Spec
    from greenroom.actors._supervisor import ChildCounts, ChildInfo, StartedChild

__all__ = ["SupervisorRef"]

T = TypeVar("T")


class SupervisorRef(ActorRef):
    """A ref to a supervisor, with OTP's child admin calls.

    Each call runs in the supervisor's own task, in order with the failures
    it handles, and waits at most ``timeout`` seconds. Every method raises
    ActorStopped if the supervisor is stopped (or stops before the call
    runs) and AskTimeout past ``timeout``. The child-id errors
    (:class:`ChildNotFound`, :class:`ChildRunning`, :class:`ChildAlreadyStarted`,
    :class:`ChildAlreadyPresent`) are all :class:`InvalidSpec`.
    """

    __slots__ = ()

    async def _call(self, fn: Callable[[Any], Awaitable[T]], timeout: float) -> T:
        cell = ActorRef._target(self, None)
        result: T = await cell.system.call_supervisor(cell, fn, timeout)
        return result

    async def start_child(self, spec: Spec, *, timeout: float = 5.0) -> StartedChild:
        """Start a new child from ``spec`` after the others; its id and ref.

        If its ``on_start`` returned IGNORE, the ref reaches no running
        actor (a non-temporary child is kept as ``"ignored"``). Called from
        an actor's code, the child's principal is not ``named``: only
        entries naming its class apply to it (see ``Principal``).

        Raises:
            ChildAlreadyStarted: a running child has the id (``.ref`` is its ref).
            ChildAlreadyPresent: a stopped child's spec has the id; restart
                or delete that one.
            InvalidSpec: a significant child under ``auto_shutdown='never'``,
                or a spec a pool cannot run.
            ChildStartFailed: its constructor or ``on_start`` raised.
        """
        named = acting.get() is None
        return await self._call(lambda sup: sup.start_child(spec, named=named), timeout)

    async def terminate_child(self, child_id: str, *, timeout: float = 30.0) -> None:
        """Stop a child within its ``shutdown``; its spec is kept (a temporary child's is not).

        A stopped child is not restarted by its own exit, but is started
        again by a later one_for_all / rest_for_one restart of its group,
        as in OTP. Terminating a stopped child does nothing.

        Raises:
            ChildNotFound: no child has that id.
        """
        await self._call(lambda sup: sup.terminate_child(child_id), timeout)

    async def restart_child(self, child_id: str, *, timeout: float = 5.0) -> ActorRef:
        """Start a stopped or ignored child again from its spec; its ref.

        Raises:
            ChildNotFound: no child has that id.
            ChildRunning: it is running or restarting.
            ChildStartFailed: its constructor or ``on_start`` raised.
        """
        return await self._call(lambda sup: sup.restart_child(child_id), timeout)

    async def delete_child(self, child_id: str, *, timeout: float = 5.0) -> None:
        """Forget the spec of a stopped child; the id is free again.

        Raises:
            ChildNotFound: no child has that id.
            ChildRunning: it is running or restarting (terminate it first).
        """
        await self._call(lambda sup: sup.delete_child(child_id), timeout)

    async def get_childspec(self, child_id: str, *, timeout: float = 5.0) -> Spec:
        """The spec the child is started from, with its ``id`` filled in.

        Raises:
            ChildNotFound: no child has that id.
        """
        return await self._call(lambda sup: sup.get_childspec(child_id), timeout)

    async def count_children(self, *, timeout: float = 5.0) -> ChildCounts:
        """How many child specs, running children, supervisors and workers it has."""
        return await self._call(lambda sup: sup.count_children(), timeout)

    async def which_children(self, *, timeout: float = 5.0) -> list[ChildInfo]:
        """The children in start order, with status, failures and mailbox depth."""
        return await self._call(lambda sup: sup.which_children(), timeout)

    async def resize(self, size: int, *, timeout: float = 30.0) -> None:
        """For a pool: grow or shrink to ``size`` workers.

        Raises:
            InvalidSpec: ``size`` is not an int >= 0.
        """
        await self._call(lambda sup: sup.resize(size), timeout)
