"""The runtime: one root supervisor, the registry of names, and the shared machinery.

Actor tasks are plain asyncio tasks (activating an idle actor must cost a few
microseconds; an anyio task-group task costs ten times that), so greenroom runs
on asyncio. The runtime tracks every task it starts and cancels and awaits what
is left on exit: nothing it started outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, overload

import anyio

from greenroom._errors import ActorStopped, GreenroomError, InvalidSpec, NameTaken
from greenroom.actors._actor import Actor, dispatch_table
from greenroom.actors._cell import Cell, State, SysItem, acting, in_supervisor
from greenroom.actors._config import RuntimeConfig, RuntimeStatistics
from greenroom.actors._deadlines import Deadlines
from greenroom.actors._extension import Extension
from greenroom.actors._pool import Pool, PoolRef
from greenroom.actors._principal import Principal
from greenroom.actors._ref import ActorRef
from greenroom.actors._spec import (
    ChildSpec,
    PoolSpec,
    Restart,
    RetryPolicy,
    Spec,
    SupervisorSpec,
    as_spec,
)
from greenroom.actors._supervisor import Supervisor
from greenroom.actors._supervisor_ref import SupervisorRef
from greenroom.actors._system import RemoteReplies, System
from greenroom.mailbox import (
    DeadLetterSink,
    MailboxConfig,
    MailboxFactory,
    MemoryDeadLetters,
    MemoryMailbox,
    MemoryMailboxes,
)
from greenroom.trace import Tracer
from greenroom.trace._logging import logger

__all__ = ["RemoteReplies", "Runtime"]


class Runtime:
    """An actor system embedded in an asyncio program.

    Use ``async with Runtime() as rt:``; on exit every actor is stopped
    (children before parents, each within its shutdown time), every pending
    ask fails with :class:`ActorStopped`, and every task the runtime started
    has finished. If the root supervisor gave up (:class:`Escalated`), the
    whole tree is stopped and the error is raised on exit.
    """

    def __init__(
        self,
        config: RuntimeConfig | None = None,
        *,
        dead_letters: DeadLetterSink | None = None,
        extensions: Sequence[Extension] = (),
        mailboxes: Mapping[str, MailboxFactory] | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.config = config = config or RuntimeConfig()
        factories: dict[str, MailboxFactory] = {"memory": MemoryMailboxes()}
        factories.update(mailboxes or {})
        if config.default_mailbox not in factories:
            raise InvalidSpec(
                f"RuntimeConfig.default_mailbox is {config.default_mailbox!r}, but the "
                f"runtime has only {sorted(factories)}"
            )
        system = self._system = System(
            self,
            config,
            dead_letters=dead_letters or MemoryDeadLetters(config.dead_letter_capacity),
            extensions=extensions,
            mailboxes=factories,
            tracer=tracer,
        )
        system.start_child = self._start_child
        system.make_cell = self._make_cell
        system.start_cell = self._start_cell
        system.call_supervisor = self._call_supervisor
        system.stop_linked = self._stop_linked
        system.root_failed = self._fail_runtime
        self._root: Cell | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def tracer(self) -> Tracer | None:
        """Where this runtime's spans go, or ``None``."""
        return self._system.tracer

    @property
    def extensions(self) -> tuple[Extension, ...]:
        """The runtime's extensions, in order."""
        return self._system.extensions

    @property
    def dead_letters(self) -> DeadLetterSink:
        """The dead-letter sink."""
        return self._system.dead_letters

    @property
    def node(self) -> str:
        """This runtime's address, as asks name it in ``Envelope.reply_to``."""
        return self._system.node

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        system = self._system
        system.loop = asyncio.get_running_loop()
        system.deadlines = Deadlines(system.loop)
        spec = SupervisorSpec(
            id="root",
            max_restarts=self.config.root_max_restarts,
            within=self.config.root_within,
        )
        root = Cell(
            system,
            "root",
            lambda: Supervisor(spec),
            Supervisor,
            MemoryMailbox(16, label="root"),
            parent=None,
            shutdown=self.config.shutdown_timeout,
            supervisor=True,
        )
        root.ref = SupervisorRef(root)
        root.principal = Principal(name="root", actor_type=Supervisor, named=True)
        root.kind = self.config.default_mailbox
        system.cells["root"] = root
        self._root = root
        await self._start_cell(root)
        self._sweeper = system.loop.create_task(self._sweep(), name="greenroom-sweeper")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        failure = self._failure
        if failure is not None and exc_info[1] is None:
            raise failure

    async def aclose(self) -> None:
        """Stop every actor and every task; safe to call twice.

        Shielded from outer cancellation, and bounded by the root's shutdown time.
        """
        system = self._system
        with anyio.CancelScope(shield=True):
            if self._stopping is None:
                self._stopping = system.loop.create_task(self._stop_tree())
            await asyncio.wait({self._stopping})
            if not self._stopping.cancelled() and self._stopping.exception() is not None:
                error = self._stopping.exception()
                logger.bind(event="internal_error").opt(exception=error).error(
                    "greenroom: stopping the tree failed"
                )
                if self._failure is None:
                    self._failure = error
            if self._sweeper is not None:
                self._sweeper.cancel()
                await asyncio.wait({self._sweeper})
            while system.tasks:
                tasks = set(system.tasks)
                for task in tasks:
                    task.cancel()
                _, stuck = await asyncio.wait(tasks, timeout=self.config.shutdown_timeout)
                if stuck:
                    # A handler that swallows cancellation: say so rather than hang.
                    logger.bind(event="stuck_tasks").error(
                        "greenroom: {n} task(s) ignored cancellation on exit: {names}",
                        n=len(stuck),
                        names=sorted(t.get_name() for t in stuck),
                    )
                    break

    async def _stop_tree(self) -> None:
        self._system.intake_open = False
        root = self._root
        if root is None:
            return
        acting.set(root)  # the hooks run here are actors' code, not the application's
        with anyio.move_on_after(self.config.shutdown_timeout):
            await root.stop()
        if root.state is not State.STOPPED:
            root.close()

    async def drain(self, timeout: float) -> bool:
        """Stop taking messages from outside actors and wait until every mailbox is empty.

        Returns whether everything was handled within ``timeout`` seconds.
        Messages sent from outside after this raise :class:`MailboxClosed`.
        """
        cells = self._system.cells
        self._system.intake_open = False

        def busy() -> bool:
            return any(len(c.mailbox) or c.current is not None or c.sys for c in cells.values())

        with anyio.move_on_after(timeout):
            # Polled: drain is a rare shutdown step, and tracking emptiness
            # on every send would tax the hot path for it.
            while busy():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            return True
        return False

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the runtime (the root gave up), if any."""
        return self._failure

    async def _sweep(self) -> None:
        system = self._system
        interval = self.config.idle_release
        while True:
            await anyio.sleep(interval)
            system.sweeps += 1
            limit = system.sweeps - 1
            idle = system.idle
            for cell, since in list(idle.items()):
                if cell.waiter is None:
                    del idle[cell]  # busy again, or gone, since it paused
                elif since < limit:
                    del idle[cell]
                    cell.retire()

    async def wait_stopped(self) -> None:
        """Wait until the runtime stops by itself (its root gave up or exited)."""
        await self._stopped.wait()

    def _fail_runtime(self, error: BaseException | None) -> None:
        if error is not None:
            logger.bind(event="root_failed").error(
                "the root supervisor gave up: {error}", error=error
            )
            if self._failure is None:
                self._failure = error
        self._system.intake_open = False
        self._stopped.set()
        if self._stopping is None:
            self._stopping = self._system.loop.create_task(self._stop_tree())

    # -- spawning -----------------------------------------------------------

    @overload
    async def spawn(self, actor: PoolSpec) -> PoolRef: ...
    @overload
    async def spawn(self, actor: SupervisorSpec) -> SupervisorRef: ...
    @overload
    async def spawn(
        self,
        actor: type[Actor] | ChildSpec,
        *,
        name: str | None = None,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        mailbox: MailboxConfig | None = None,
        restart: Restart = "permanent",
        retry: RetryPolicy | None = None,
        handler_timeout: float | None = None,
    ) -> ActorRef: ...
    async def spawn(
        self,
        actor: type[Actor] | Spec,
        *,
        name: str | None = None,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        mailbox: MailboxConfig | None = None,
        restart: Restart = "permanent",
        retry: RetryPolicy | None = None,
        handler_timeout: float | None = None,
    ) -> ActorRef:
        """Start an actor (or a supervisor or pool, from its spec) under the root.

        Returns an :class:`ActorRef` (a :class:`PoolRef` for a pool, a
        :class:`SupervisorRef` for a supervisor); an unnamed actor is named
        uniquely after its class; after ``on_start`` returned ``IGNORE``, a
        ref to a stopped actor. Its :class:`Principal` is ``named`` (entries
        naming it apply) only when spawned by the application, not by an
        actor's code (then only entries naming its class apply).

        Raises:
            InvalidSpec: a bad spec or option; NameTaken: the name is in use;
            ChildStartFailed: ``on_start`` raised; ActorStopped: the runtime is stopped.
        """
        spec = as_spec(
            actor,
            name=name,
            args=args,
            kwargs=kwargs,
            mailbox=mailbox,
            restart=restart,
            retry=retry,
            handler_timeout=handler_timeout,
        )
        if self._root is None:
            raise InvalidSpec("spawn before the runtime started; use `async with Runtime()`")
        if not self._system.intake_open or self._root.state is State.STOPPED:
            raise ActorStopped("runtime")
        return await self._start_child(self._root, spec, acting.get() is None)

    def ref(self, name: str) -> ActorRef:
        """The ref of the running actor called ``name``.

        Raises:
            ActorStopped: no actor of that name is running.
        """
        cell = self._system.cells.get(name)
        if cell is None:
            raise ActorStopped(name)
        return cell.ref

    async def stop(self, name: str) -> None:
        """Stop the actor (or supervisor, or pool) that :meth:`spawn` started as ``name``.

        It stops within its shutdown time, as its supervisor would stop it,
        and is forgotten: it is not restarted, and the name is free again.

        Raises:
            ActorStopped: no actor of that name was spawned under the root
                (a child of another supervisor is stopped through that one).
        """
        root = self._root
        if root is None or root.state is State.STOPPED:
            raise ActorStopped(name)

        async def stop_child(sup: Any) -> None:
            await sup.terminate_child(name)
            if name in sup.children:  # a temporary child is forgotten already
                await sup.delete_child(name)

        try:
            await self._call_supervisor(root, stop_child, self.config.shutdown_timeout)
        except InvalidSpec as error:  # no such child
            raise ActorStopped(name) from error

    def route_remote_replies(self, sink: RemoteReplies | None) -> None:
        """Send the replies of asks made in other processes to ``sink``.

        An ask whose ``reply_to`` names another node (it came through a shared
        mailbox) is answered by ``sink(envelope, result, error)`` (``error``
        ``None`` on success); without a sink (``None`` removes it) such
        replies are dropped and counted as late.
        """
        self._system.remote_replies = sink

    def statistics(self) -> RuntimeStatistics:
        """A snapshot of the runtime's counters."""
        system = self._system
        return RuntimeStatistics(
            actors=len(system.cells),
            tasks=len(system.tasks),
            idle_tasks=sum(1 for cell in system.idle if cell.waiter is not None),
            pending_asks=system.deadlines.asks() if self._root is not None else 0,
            late_replies=system.late_replies,
            dead_letters=system.dead_letter_total,
        )

    # -- the steps System delegates here (they need the classes above it) ----

    async def _start_child(self, supervisor: Cell, spec: Spec, named: bool) -> ActorRef:
        started = await self._call_supervisor(
            supervisor, lambda sup: sup.start_child(spec, named=named), self.config.start_timeout
        )
        ref: ActorRef = started.ref
        return ref

    async def _call_supervisor(
        self, supervisor: Cell, fn: Callable[[Any], Awaitable[Any]], timeout: float
    ) -> Any:
        if in_supervisor.get() is supervisor:
            return await fn(supervisor.actor)
        loop = self._system.loop
        future: asyncio.Future[Any] = loop.create_future()
        deadlines = self._system.deadlines
        slot = deadlines.add(future, timeout, supervisor.name, "supervisor call")
        supervisor.post_system(SysItem(fn, future))
        try:
            return await future
        finally:
            deadlines.settle(slot, future)

    async def _stop_linked(self, cell: Cell) -> None:
        parent = cell.parent
        child = cell.child
        if parent is None or child is None or parent.state is State.STOPPED:
            return
        with contextlib.suppress(GreenroomError):  # gone already
            await self._call_supervisor(
                parent, lambda sup: sup.terminate_child(child.id), self.config.shutdown_timeout
            )

    def _make_cell(self, parent: Cell, spec: Spec, name: str, named: bool) -> Cell:
        # The principal is bound here, from the spec and the spawner, once:
        # restarts keep the cell and so the principal.
        system = self._system
        if isinstance(spec, ChildSpec):
            cls = spec.actor
            principal = Principal(name=name, actor_type=cls, named=named)
            for extension in system.extensions:
                extension.check(principal)
            kind = spec.mailbox.kind or parent.kind
            factory = system.mailboxes.get(kind)
            if factory is None:
                raise InvalidSpec(
                    f"{name} asks for a {kind!r} mailbox, but the runtime has only "
                    f"{sorted(system.mailboxes)}; pass Runtime(mailboxes={{{kind!r}: ...}})"
                )
            dispatch = dispatch_table(cls)
            mailbox = factory.create(name, spec.mailbox, tuple(dispatch))
            cell = Cell(
                system,
                name,
                spec,
                cls,
                mailbox,
                parent=parent,
                overflow_fail=spec.mailbox.overflow == "fail",
                shutdown=spec.shutdown,
                handler_timeout=spec.handler_timeout,
                throughput=spec.throughput,
            )
            cell.ref = ActorRef(cell)
            cell.principal = principal
            return cell
        # A supervisor or a pool: its work is its children, its mailbox small.
        ref_type: type[ActorRef]
        if isinstance(spec, PoolSpec):
            sup_type: type[Supervisor] = Pool
            make: Callable[[], Actor] = functools.partial(Pool, spec)
            kind, ref_type = parent.kind, PoolRef
        else:
            sup_type, make = Supervisor, functools.partial(Supervisor, spec)
            kind, ref_type = spec.mailbox_kind or parent.kind, SupervisorRef
        cell = Cell(
            system,
            name,
            make,
            sup_type,
            MemoryMailbox(16, label=name),
            parent=parent,
            shutdown=spec.shutdown,
            supervisor=True,
        )
        cell.kind = kind
        cell.ref = ref_type(cell)
        cell.principal = Principal(name=name, actor_type=sup_type, named=named)
        return cell

    async def _start_cell(self, cell: Cell) -> bool:
        system = self._system
        if not system.intake_open and cell.parent is not None:
            raise ActorStopped("runtime")
        existing = system.cells.get(cell.name)
        if existing is not None and existing is not cell:
            raise NameTaken(cell.name)
        system.cells[cell.name] = cell
        try:
            started = await cell.start()
        except BaseException:
            cell.close()
            raise
        if not started:
            cell.close()
        return started
