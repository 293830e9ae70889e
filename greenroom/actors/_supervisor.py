"""The supervisor: restarts, retries and escalation in plain code, with OTP semantics.

Rules a user can rely on:

* Children start in spec order; if one fails to start, those already
  started are stopped again, in reverse order, and the start fails with
  :class:`ChildStartFailed`. A child whose ``on_start`` returns ``IGNORE`` is
  kept as ``"ignored"`` and not run.
* Children stop in reverse start order, each within its ``shutdown`` time.
* A failure reaches the supervisor as a system message, handled in the
  supervisor's own task. The failed message is retried per the child's
  :class:`RetryPolicy` (put back at the head of the kept mailbox, so the
  sender's order holds) or dead-lettered, and the ``ask`` waiting on it gets
  :class:`HandlerError`. Then the child is restarted per its restart type
  and the strategy, after a backoff delay with jitter.
* Every restart counts toward the intensity: more than ``max_restarts``
  within ``within`` seconds (monotonic clock) and the supervisor stops all
  its children and fails with :class:`Escalated`, which its own supervisor
  handles like any failure.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import msgspec

from greenroom._errors import (
    ChildStartFailed,
    ErrorInfo,
    Escalated,
    HandlerError,
    InvalidSpec,
    UsageError,
)
from greenroom.actors._actor import Actor
from greenroom.actors._cell import Cell, State, SysItem, in_supervisor
from greenroom.actors._spec import ChildSpec, PoolSpec, Spec, SupervisorSpec
from greenroom.mailbox import Envelope
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors._ref import ActorRef

__all__ = ["ChildInfo", "ChildStatus", "Supervisor"]

ChildStatus = Literal["running", "restarting", "stopped", "ignored"]


class ChildInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One child as its supervisor sees it (``which_children``).

    Attributes:
        id: the child's id among its siblings.
        name: its registered name.
        kind: ``"worker"``, ``"supervisor"`` or ``"pool"``.
        status: ``"running"``, ``"restarting"``, ``"stopped"`` or ``"ignored"``.
        restart: its restart type.
        failures: how often its handlers failed since it was started.
        depth: messages waiting in its mailbox.
    """

    id: str
    name: str
    kind: str
    status: ChildStatus
    restart: str
    failures: int
    depth: int


class Child:
    """A supervisor's record of one child."""

    __slots__ = ("cell", "id", "name", "named", "spec", "status")

    def __init__(self, spec: Spec, child_id: str, named: bool) -> None:
        self.spec = spec
        self.id = child_id
        self.named = named  # the application gave its name (see Principal.named)
        self.name = ""
        self.cell: Cell | None = None
        self.status: ChildStatus = "stopped"

    def info(self) -> ChildInfo:
        cell = self.cell
        kind = (
            "pool"
            if isinstance(self.spec, PoolSpec)
            else "supervisor"
            if isinstance(self.spec, SupervisorSpec)
            else "worker"
        )
        return ChildInfo(
            id=self.id,
            name=self.name,
            kind=kind,
            status=self.status,
            restart=self.spec.restart,
            failures=0 if cell is None else cell.failures,
            depth=0 if cell is None else len(cell.mailbox),
        )


class Supervisor(Actor):
    """An actor whose work is its children. Built from a :class:`SupervisorSpec`.

    Its management methods (``start_child`` and the others) run in its own
    task; call them through :class:`SupervisorRef`.
    """

    def __init__(self, spec: SupervisorSpec) -> None:
        self.spec = spec
        self.children: dict[str, Child] = {}  # by id, in start order
        self._restarts: deque[float] = deque()
        self._auto_ids = itertools.count(1)
        self._pending: set[asyncio.TimerHandle] = set()

    # -- start and stop ---------------------------------------------------

    async def on_start(self) -> None:
        token = in_supervisor.set(self.ctx._cell)
        try:
            for spec in self.spec.children:
                await self._add(spec, rollback=True)
        finally:
            in_supervisor.reset(token)

    async def on_stop(self) -> None:
        for handle in self._pending:
            handle.cancel()
        self._pending.clear()
        token = in_supervisor.set(self.ctx._cell)
        try:
            await self._stop_children()
        finally:
            in_supervisor.reset(token)

    async def _add(
        self, spec: Spec, *, rollback: bool, named: bool | None = None
    ) -> tuple[Child, ActorRef]:
        # A child of this supervisor's own spec (or a pool's worker) has a
        # name that came with this supervisor: it is as named as this one.
        if named is None:
            named = self.ctx.principal.named
        child_id = spec.child_id
        if child_id in self.children:
            raise InvalidSpec(
                f"{self.ctx.name} has a child with id {child_id!r} already; ids are unique "
                "among siblings"
            )
        child = Child(spec, child_id, named)
        try:
            ref = await self._start(child)
        except Exception:
            if rollback:
                await self._stop_children()
            raise
        self.children[child_id] = child
        self._children_changed()
        return child, ref

    async def _start(self, child: Child) -> ActorRef:
        """Start ``child`` in a new cell; its ref (to a stopped actor if it was ignored).

        Raises:
            ChildStartFailed: its constructor or ``on_start`` raised.
            UsageError: a mistake in the spec or the code (not wrapped).
        """
        system = self.ctx._cell.system
        name = child.name = self._child_name(child.id)
        cell = system.make_cell(self.ctx._cell, child.spec, name, child.named)
        cell.child = child
        child.cell = cell
        try:
            started = await system.start_cell(cell)
        except Exception as exc:
            child.cell = None
            if isinstance(exc, UsageError):
                raise
            raise ChildStartFailed(name, ErrorInfo.from_exception(exc)) from exc
        except BaseException:
            child.cell = None
            raise
        child.status = "running" if started else "ignored"
        if not started:
            child.cell = None
        return cell.ref

    def _child_name(self, child_id: str) -> str:
        cell = self.ctx._cell
        return child_id if cell.parent is None else f"{cell.name}/{child_id}"

    def _next_id(self, base: str) -> str:
        while True:
            candidate = f"{base}-{next(self._auto_ids)}"
            if candidate not in self.children:
                return candidate

    async def _stop_children(self) -> None:
        for child in reversed(self.children.values()):
            await self._stop_child(child)

    async def _stop_child(self, child: Child) -> None:
        cell = child.cell
        if cell is not None:
            await cell.stop()  # if cut short, the cell stays for _gr_kill to find
        child.cell = None
        if child.status != "ignored":
            child.status = "stopped"

    def _gr_kill(self) -> None:
        """Our stop ran out of time: stop every child at once, without waiting."""
        for child in reversed(self.children.values()):
            cell = child.cell
            child.cell = None
            if cell is not None:
                cell.kill()
            if child.status != "ignored":
                child.status = "stopped"

    def _children_changed(self) -> None:
        """Hook for subclasses that keep derived state (pools keep a routing table)."""

    # -- failures (system messages, run in this supervisor's task) --------

    def _find(self, cell: Cell, instance: Actor | None) -> Child | None:
        """The record of ``cell`` if ``instance`` is still its current instance."""
        child = cell.child
        if (
            isinstance(child, Child)
            and child.cell is cell
            and self.children.get(child.id) is child
            and (instance is None or cell.actor is instance)
        ):
            return child
        return None

    async def _child_failed(
        self,
        cell: Cell,
        envelope: Envelope | None,
        error: Exception,
        instance: Actor | None = None,
    ) -> None:
        child = self._find(cell, None)
        info = ErrorInfo.from_exception(error)
        restart = child is not None and child.spec.restart != "temporary"
        delay_floor = 0.0
        failed_at = None if envelope is None else (envelope.trace_id, envelope.span_id)
        if envelope is not None:
            # The message is settled even when the report is stale.
            delay_floor = self._settle_message(cell, child, envelope, error, info, restart)
        if child is None or (instance is not None and cell.actor is not instance):
            return  # that instance was replaced already (a group restart): nothing to restart
        logger.bind(actor=cell.name, event="child_failed").warning(
            "{actor} failed: {error}", actor=cell.name, error=f"{info.type}: {info.message}"
        )
        if not restart:
            await self._retire(child)
            return
        await self._restart(child, info, delay_floor, failed_at)

    def _settle_message(
        self,
        cell: Cell,
        child: Child | None,
        envelope: Envelope,
        error: Exception,
        info: ErrorInfo,
        restart: bool,
    ) -> float:
        """Retry the failed message or dead-letter it; the delay the retry needs."""
        spec = None if child is None else child.spec
        retry = spec.retry if isinstance(spec, ChildSpec) else None
        if restart and retry is not None and retry.should_retry(error, envelope.attempt):
            delay = retry.backoff.delay(envelope.attempt)
            cell.system.trace_event(
                "supervisor",
                "retry",
                self.ctx.name,
                envelope,
                {
                    "greenroom.child": cell.name,
                    "greenroom.attempt": envelope.attempt + 1,
                    "greenroom.delay": delay,
                },
                info,
            )
            envelope.attempt += 1
            cell.mailbox.requeue(envelope)
            return delay
        system = cell.system
        cell.mailbox.ack(envelope)
        system.dead_letter(envelope, cell.name, "handler_failed", info)
        if envelope.reply is not None or envelope.correlation_id is not None:
            failure = HandlerError(
                cell.name, type(envelope.body).__qualname__, info, envelope.attempt
            )
            failure.__cause__ = error
            system.fail_ask(envelope, failure)
        return 0.0

    async def _child_exited(self, cell: Cell, instance: Actor | None = None) -> None:
        child = self._find(cell, instance)
        if child is None:
            return
        if child.spec.restart == "permanent":
            info = ErrorInfo(type="normal", message=f"{cell.name} stopped itself")
            await self._restart(child, info, 0.0)
        else:
            await self._retire(child)

    async def _retire(self, child: Child) -> None:
        """A child that is not restarted: stop it; forget it if temporary."""
        await self._stop_child(child)
        if child.spec.restart == "temporary":
            del self.children[child.id]
            self._children_changed()
        if child.spec.significant:
            await self._significant_gone()

    async def _significant_gone(self) -> None:
        mode = self.spec.auto_shutdown
        if mode == "never":
            return
        alive = any(
            c.spec.significant and c.status in ("running", "restarting")
            for c in self.children.values()
        )
        if mode == "any_significant" or not alive:
            await self._stop_children()
            self.ctx.stop()

    def _record_restart(self) -> bool:
        now = time.monotonic()
        window = self._restarts
        window.append(now)
        while window and window[0] < now - self.spec.within:
            window.popleft()
        return len(window) <= self.spec.max_restarts

    async def _restart(
        self,
        child: Child,
        info: ErrorInfo,
        delay_floor: float,
        failed_at: tuple[int, int] | None = None,
    ) -> None:
        """Restart ``child`` (and its group); ``failed_at`` is the span it failed in."""
        system = self.ctx._cell.system
        if not self._record_restart():
            system.trace_event(
                "supervisor",
                "escalate",
                self.ctx.name,
                failed_at,
                {"greenroom.child": child.name, "greenroom.restarts": len(self._restarts)},
                info,
            )
            await self._stop_children()
            raise Escalated(self.ctx.name, len(self._restarts), self.spec.within, info)
        group = self._group(child)
        for member in reversed(group):
            cell = member.cell
            if cell is None:
                continue
            if member.spec.restart == "temporary" and member is not child:
                await self._retire(member)
                continue
            await cell.halt(requeue=True)
            cell.state = State.RESTARTING
            member.status = "restarting"
        group = [m for m in group if m.status == "restarting"]
        delay = max(self.spec.backoff.delay(len(self._restarts)), delay_floor)
        system.trace_event(
            "supervisor",
            "restart",
            self.ctx.name,
            failed_at,
            {
                "greenroom.children": [m.name for m in group],
                "greenroom.strategy": self.spec.strategy,
                "greenroom.delay": delay,
            },
            info,
        )
        if delay <= 0:
            await self._restart_group(group, info)
            return
        own = self.ctx._cell

        def due() -> None:
            self._pending.discard(handle)
            own.post_system(SysItem(lambda sup: sup._restart_group(group, info)))

        handle = own.system.loop.call_later(delay, due)
        self._pending.add(handle)

    def _group(self, child: Child) -> list[Child]:
        strategy = self.spec.strategy
        if strategy == "one_for_one":
            return [child]
        live = [c for c in self.children.values() if c.cell is not None or c is child]
        if strategy == "one_for_all":
            return live
        return live[live.index(child) :]

    async def _restart_group(self, group: list[Child], info: ErrorInfo) -> None:
        own = self.ctx._cell
        for member in group:
            cell = member.cell
            if (
                cell is None
                or self.children.get(member.id) is not member
                or member.status != "restarting"
            ):
                continue
            try:
                await cell.restart(info)
            except Exception as exc:
                own.post_system(SysItem(_report_failure(cell, exc)))
                continue
            member.status = "running"
            logger.bind(actor=cell.name, event="child_restarted").info(
                "{actor} restarted", actor=cell.name
            )

    # -- management (system items with a future; see SupervisorRef) -------

    def _get(self, child_id: str) -> Child:
        child = self.children.get(child_id)
        if child is not None:
            return child
        raise InvalidSpec(
            f"{self.ctx.name} has no child {child_id!r}; it has: "
            f"{', '.join(self.children) or 'none'}"
        )

    async def start_child(self, spec: Spec, *, named: bool = False) -> ActorRef:
        """Start one more child from ``spec``; its ref (to a stopped actor if it was ignored).

        ``named``: whether the application (not an actor's code) asked for
        it, so that entries naming the child by name apply to it.
        """
        if spec.significant and self.spec.auto_shutdown == "never":
            raise InvalidSpec(
                f"{self.ctx.name} has auto_shutdown='never', so it cannot take the significant "
                f"child {spec.child_id!r} (as in OTP); mark it significant=False"
            )
        if isinstance(spec, ChildSpec) and spec.id is None:
            spec = msgspec.structs.replace(spec, id=self._next_id(spec.child_id))
        _, ref = await self._add(spec, rollback=False, named=named)
        return ref

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child; a temporary child is also forgotten."""
        child = self._get(child_id)
        await self._stop_child(child)
        if child.spec.restart == "temporary":
            del self.children[child_id]
        self._children_changed()

    async def restart_child(self, child_id: str) -> ActorRef:
        """Start a stopped child again from its spec; its new ref."""
        child = self._get(child_id)
        if child.status in ("running", "restarting"):
            raise InvalidSpec(f"child {child_id!r} of {self.ctx.name} is {child.status}")
        ref = await self._start(child)
        self._children_changed()
        return ref

    async def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec."""
        child = self._get(child_id)
        if child.status in ("running", "restarting"):
            raise InvalidSpec(
                f"child {child_id!r} of {self.ctx.name} is {child.status}; terminate it first"
            )
        del self.children[child_id]
        self._children_changed()

    async def which_children(self) -> list[ChildInfo]:
        """The children in start order, with their status."""
        return [c.info() for c in self.children.values()]


def _report_failure(cell: Cell, error: Exception) -> Callable[[Supervisor], Awaitable[None]]:
    """A system item that reports a failed restart of ``cell`` to its supervisor."""

    def item(sup: Supervisor) -> Awaitable[None]:
        return sup._child_failed(cell, None, error)

    return item
