"""The supervisor: start, stop, restart and escalate by the rules of OTP's ``supervisor``.

* Children start in spec order; a failed start stops those already started
  (in reverse order) and raises :class:`ChildStartFailed`. A child whose
  ``on_start`` returns ``IGNORE`` is kept as ``"ignored"``; a temporary one
  is not kept.
* Children stop in reverse start order, each within its ``shutdown``: one
  grace period for its handler and ``on_stop`` together, then cancellation
  (``"brutal_kill"``: at once). Default: 5 s for a worker, ``math.inf`` for a
  supervisor or pool (it waits for its subtree). A pool's workers (OTP's
  dynamic children) stop concurrently.
* Restart types: ``permanent`` always, ``transient`` only after a failure
  (not after ``ctx.stop()``), ``temporary`` never, and forgotten (gone from
  ``which_children``) whenever it exits.
* The strategy picks the group a restart covers: the child
  (``one_for_one``), every child (``one_for_all``), or it and those started
  after it (``rest_for_one``). The group stops in reverse start order, then
  starts in start order. Temporary members are stopped and forgotten; a kept
  member that was not running (terminated, exited normally, ignored) starts
  with the group, as ``supervisor.erl`` does.
* More than ``max_restarts`` restarts within ``within`` seconds (monotonic
  clock) stop all children and fail the supervisor with :class:`Escalated`,
  which its parent takes as OTP's exit ``shutdown``: only a permanent
  supervisor child is restarted, and a significant one counts for
  auto-shutdown.
* ``auto_shutdown`` reacts to a significant child that is not restarted (a
  transient one exiting normally, a temporary one on any exit):
  ``any_significant`` at the first, ``all_significant`` at the last; never
  to ``terminate_child`` or a group restart.
* Stopping a supervisor drops its queued work and a pending delayed
  restart, so one in a restart loop stops promptly.
* Child admin is OTP's full set, on :class:`SupervisorRef`.

Differences from OTP, on purpose:

* A failed handler's message is settled by the child's cell (``Cell.fail``:
  retried per its ``RetryPolicy`` or dead-lettered); the supervisor only
  decides the restart, waiting at least the retry's backoff. OTP has no
  messages that outlive a process.
* A restarted child keeps its mailbox, so the messages queued behind a
  failure reach its successor in order (an OTP restart is a new pid).
* A restart waits ``SupervisorSpec.backoff`` (jitter included), growing with
  the restarts in the window; OTP restarts at once (a ``Backoff`` of zeros).
* Defaults: ``max_restarts=10`` within ``within=10.0`` s (OTP: 1 within 5):
  one failure here is often a retried message, not a crashed process.
* Times are seconds (floats); ``math.inf`` is ``infinity``. asyncio
  cancellation is a request, not ``kill``: a cancelled handler gets a brief
  unwind (``Cell.halt``) and is not awaited beyond it.
* No ``simple_one_for_one``: a pool (``PoolSpec``) is its analogue, but its
  workers have ids (``"0"``, ``"1"``...), so they accept ``restart_child``
  and ``delete_child``; it takes only workers of its worker class.
* ``ctx.stop()`` is OTP's exit ``normal``; there is no ``{shutdown, Term}``.
  ``auto_shutdown`` stops the children, then the supervisor exits normally.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from functools import partial
from typing import Literal, NamedTuple

import msgspec

from greenroom._errors import (
    ChildAlreadyPresent,
    ChildAlreadyStarted,
    ChildNotFound,
    ChildRunning,
    ChildStartFailed,
    ErrorInfo,
    Escalated,
    InvalidSpec,
    UsageError,
)
from greenroom.actors._actor import Actor
from greenroom.actors._cell import Cell, State, SysItem, in_supervisor
from greenroom.actors._ref import ActorRef
from greenroom.actors._spec import ChildSpec, PoolSpec, Spec, SupervisorSpec
from greenroom.trace._logging import logger

__all__ = ["ChildCounts", "ChildInfo", "ChildStatus", "StartedChild", "Supervisor"]

ChildStatus = Literal["running", "restarting", "stopped", "ignored"]
ChildKind = Literal["worker", "supervisor", "pool"]


class ChildInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One child as its supervisor sees it (``which_children``).

    Attributes:
        id: the child's id among its siblings.
        name: its registered name.
        kind: ``"worker"``, ``"supervisor"`` or ``"pool"``.
        status: a :data:`ChildStatus`.
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


class ChildCounts(msgspec.Struct, frozen=True, kw_only=True):
    """OTP's ``count_children``.

    Attributes:
        specs: every child the supervisor keeps, running or not.
        active: the children running now (not restarting, stopped or ignored).
        supervisors: children that are supervisors or pools, running or not.
        workers: children that are plain actors, running or not.
    """

    specs: int
    active: int
    supervisors: int
    workers: int


class StartedChild(NamedTuple):
    """What ``start_child`` returns: the child's id and its ref (``child_id, ref = ...``).

    If the child's ``on_start`` returned ``IGNORE``, ``ref`` reaches no
    running actor (a call through it fails with ``ActorStopped``).
    """

    id: str
    ref: ActorRef


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

    def mark_stopped(self) -> None:
        self.cell = None
        if self.status != "ignored":
            self.status = "stopped"

    @property
    def kind(self) -> ChildKind:
        spec = self.spec
        if isinstance(spec, PoolSpec):
            return "pool"
        return "supervisor" if isinstance(spec, SupervisorSpec) else "worker"

    @property
    def live(self) -> bool:
        return self.status == "running" or self.status == "restarting"

    def info(self) -> ChildInfo:
        cell = self.cell
        return ChildInfo(
            id=self.id,
            name=self.name,
            kind=self.kind,
            status=self.status,
            restart=self.spec.restart,
            failures=0 if cell is None else cell.failures,
            depth=0 if cell is None else len(cell.mailbox),
        )


class Supervisor(Actor):
    """An actor whose work is its children, built from a :class:`SupervisorSpec`.

    Its admin methods run in its own task: call them through :class:`SupervisorRef`.
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

    def _stopping(self) -> bool:
        """Whether this supervisor is being stopped: it starts and restarts nothing more."""
        return self.ctx._cell.state in (State.STOPPING, State.RESTARTING, State.STOPPED)

    async def _add(
        self, spec: Spec, *, rollback: bool, named: bool | None = None, child_id: str | None = None
    ) -> tuple[Child, ActorRef]:
        # A child of this supervisor's own spec (or a pool's worker) has a
        # name that came with this supervisor: it is as named as this one.
        if named is None:
            named = self.ctx.principal.named
        if child_id is None:
            child_id = spec.child_id
        existing = self.children.get(child_id)
        if existing is not None:
            if existing.live and existing.cell is not None:
                raise ChildAlreadyStarted(self.ctx.name, child_id, existing.cell.ref)
            raise ChildAlreadyPresent(self.ctx.name, child_id)
        child = Child(spec, child_id, named)
        try:
            ref = await self._start(child)
        except Exception:
            if rollback:
                await self._stop_children()
            raise
        if child.status == "ignored" and spec.restart == "temporary":
            return child, ref  # OTP keeps no spec of an ignored temporary child
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
        """Static children stop one by one, in reverse start order."""
        for child in reversed(self.children.values()):
            await self._stop_child(child)

    async def _stop_child(self, child: Child) -> None:
        if child.cell is not None:
            await child.cell.stop()  # if cut short, the cell stays for _gr_kill to find
        child.mark_stopped()

    def _gr_kill(self) -> None:
        """Our stop ran out of time: stop every child at once, without waiting."""
        for child in reversed(self.children.values()):
            cell = child.cell
            child.mark_stopped()
            if cell is not None:
                cell.kill()

    def _children_changed(self) -> None:
        """Hook for subclasses that keep derived state (pools keep a routing table)."""

    # -- exits (system messages, run in this supervisor's task) -----------

    def _find(self, cell: Cell, instance: Actor | None) -> Child | None:
        """The record of ``cell`` if ``instance`` is still its current one (none while stopping)."""
        child = cell.child
        if (
            not self._stopping()
            and isinstance(child, Child)
            and child.cell is cell
            and self.children.get(child.id) is child
            and (instance is None or cell.actor is instance)
        ):
            return child
        return None

    async def _child_failed(
        self,
        cell: Cell,
        error: Exception,
        instance: Actor | None,
        delay_floor: float = 0.0,
        failed_at: tuple[int, int] | None = None,
    ) -> None:
        """``cell`` failed (its message is settled already, see ``Cell.fail``).

        ``delay_floor`` is that message's retry backoff, the least the restart
        waits; ``failed_at`` the span it failed in.
        """
        child = self._find(cell, instance)
        if child is None:
            return  # that instance was replaced already (a group restart): nothing to restart
        info = ErrorInfo.from_exception(error)
        logger.bind(actor=cell.name, event="child_failed").warning(
            "{actor} failed: {error}", actor=cell.name, error=f"{info.type}: {info.message}"
        )
        restart = child.spec.restart
        # OTP: a supervisor past its intensity exits with reason `shutdown`,
        # which restarts only a permanent child.
        shutdown = isinstance(error, Escalated) and child.kind != "worker"
        if restart == "temporary" or (shutdown and restart == "transient"):
            await self._retire(child, significant=True)
        else:
            await self._restart(child, info, delay_floor, failed_at)

    async def _child_exited(self, cell: Cell, instance: Actor | None = None) -> None:
        """``cell`` stopped itself (``ctx.stop()``): OTP's exit ``normal``."""
        child = self._find(cell, instance)
        if child is None:
            return
        if child.spec.restart == "permanent":
            info = ErrorInfo(type="normal", message=f"{cell.name} stopped itself")
            await self._restart(child, info, 0.0)
        else:
            await self._retire(child, significant=True)

    async def _retire(self, child: Child, *, significant: bool) -> None:
        """Stop a child that is not restarted; forget it if temporary.

        ``significant``: its exit counts for auto-shutdown (not when a group
        restart stops a temporary sibling or ``terminate_child`` stops it, as in OTP).
        """
        await self._stop_child(child)
        if child.spec.restart == "temporary" and self.children.get(child.id) is child:
            del self.children[child.id]
        self._children_changed()
        if significant and child.spec.significant:
            await self._significant_gone()

    async def _significant_gone(self) -> None:
        mode = self.spec.auto_shutdown
        if mode == "never":
            return
        alive = any(c.spec.significant and c.live for c in self.children.values())
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
        """Restart ``child`` and its group; past the intensity, stop everything and escalate.

        Raises:
            Escalated: more than ``max_restarts`` within ``within`` seconds.
        """
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
            if member is not child and member.spec.restart == "temporary":
                await self._retire(member, significant=False)
                continue
            cell = member.cell
            if cell is not None:
                await cell.halt(requeue=True)
            member.status = "restarting"
        group = [m for m in group if m.status == "restarting"]
        self._children_changed()
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
        """The children a restart of ``child`` covers, in start order (running or not)."""
        strategy = self.spec.strategy
        if strategy == "one_for_one":
            return [child]
        members = list(self.children.values())
        if strategy == "one_for_all":
            return members
        return members[members.index(child) :]

    async def _restart_group(self, group: list[Child], info: ErrorInfo) -> None:
        """Start ``group`` in order: a halted instance is replaced, a stopped child started."""
        if self._stopping():
            return
        own = self.ctx._cell
        for member in group:
            if self.children.get(member.id) is not member or member.status != "restarting":
                continue  # terminated or deleted during the backoff
            cell = member.cell
            try:
                if cell is None:
                    await self._start(member)
                else:
                    await cell.restart(info)
                    member.status = "running"
            except Exception as exc:
                # OTP's try_again: the restart is retried as a new failure,
                # counted toward the intensity, after this item.
                own.post_system(
                    SysItem(partial(Supervisor._retry_restart, child=member, error=exc))
                )
                continue
            logger.bind(actor=member.name, event="child_restarted").info(
                "{actor} restarted", actor=member.name
            )
        self._children_changed()

    async def _retry_restart(self, child: Child, error: Exception) -> None:
        # Let other tasks in between attempts, as OTP casts try_again_restart
        # to itself: a restart loop without backoff must not starve the loop,
        # and a stop request must get through.
        await asyncio.sleep(0)
        if self._stopping():
            return
        if self.children.get(child.id) is not child or child.status != "restarting":
            return
        info = ErrorInfo.from_exception(error)
        logger.bind(actor=child.name, event="restart_failed").warning(
            "{actor} failed to restart: {error}",
            actor=child.name,
            error=f"{info.type}: {info.message}",
        )
        await self._restart(child, info, 0.0)

    # -- child admin (system items with a future; documented on SupervisorRef)

    def _get(self, child_id: str, *, if_running: str | None = None) -> Child:
        """The child with that id; with ``if_running`` (the fix), one not running."""
        child = self.children.get(child_id)
        if child is None:
            raise ChildNotFound(self.ctx.name, child_id, tuple(self.children))
        if if_running is not None and child.live:
            raise ChildRunning(self.ctx.name, child_id, child.status, if_running)
        return child

    async def start_child(self, spec: Spec, *, named: bool = False) -> StartedChild:
        """Start one more child from ``spec``, after the others; its id and ref.

        ``named``: whether the application (not an actor's code) asked for
        it, so that entries naming the child by name apply to it.

        Raises:
            ChildAlreadyStarted: a running child has that id.
            ChildAlreadyPresent: a stopped child's spec has that id.
            InvalidSpec: a significant child under ``auto_shutdown='never'``.
            ChildStartFailed: its constructor or ``on_start`` raised.
        """
        if spec.significant and self.spec.auto_shutdown == "never":
            raise InvalidSpec(
                f"{self.ctx.name} has auto_shutdown='never', so it cannot take the significant "
                f"child {spec.child_id!r} (as in OTP); mark it significant=False"
            )
        child_id = None
        if isinstance(spec, ChildSpec) and spec.id is None:
            child_id = self._next_id(spec.child_id)  # the spec stays shared; the id is the child's
        child, ref = await self._add(spec, rollback=False, named=named, child_id=child_id)
        return StartedChild(child.id, ref)

    async def terminate_child(self, child_id: str) -> None:
        """Stop a child and keep its spec (a temporary child is forgotten); a no-op if stopped."""
        await self._retire(self._get(child_id), significant=False)

    async def restart_child(self, child_id: str) -> ActorRef:
        """Start a stopped (or ignored) child again from its spec, in its place; its ref."""
        child = self._get(child_id, if_running="terminate_child it first to start it afresh")
        ref = await self._start(child)
        self._children_changed()
        return ref

    async def delete_child(self, child_id: str) -> None:
        """Forget a stopped child's spec; its id is free again."""
        self._get(child_id, if_running="terminate it first")
        del self.children[child_id]
        self._children_changed()

    async def get_childspec(self, child_id: str) -> Spec:
        """The spec the child is started from (its ``id`` filled in)."""
        child = self._get(child_id)
        spec = child.spec
        if isinstance(spec, ChildSpec) and spec.id is None:
            return msgspec.structs.replace(spec, id=child.id)
        return spec

    async def count_children(self) -> ChildCounts:
        """OTP's ``count_children``."""
        children = list(self.children.values())
        workers = sum(1 for c in children if c.kind == "worker")
        return ChildCounts(
            specs=len(children),
            active=sum(1 for c in children if c.status == "running"),
            supervisors=len(children) - workers,
            workers=workers,
        )

    async def which_children(self) -> list[ChildInfo]:
        """The children in start order, with their status."""
        return [c.info() for c in self.children.values()]
