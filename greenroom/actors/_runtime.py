"""The runtime: one root supervisor, the registry of names, and the shared machinery.

Actor tasks are plain asyncio tasks owned by the runtime (an activation of
an idle actor must cost a few microseconds; an anyio task-group task costs
about ten times that here). The runtime tracks every task it starts and
cancels and awaits what is left on exit, so nothing it started outlives it.
greenroom therefore runs on asyncio (anyio's asyncio backend included).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, overload

import anyio
import msgspec

from greenroom._errors import (
    ActorStopped,
    AskTimeout,
    ErrorInfo,
    GreenroomError,
    InvalidMessage,
    InvalidSpec,
    MailboxClosed,
    MailboxFull,
    MessageTooLarge,
    NameTaken,
    UnknownMessage,
)
from greenroom.actors._actor import Actor, dispatch_table
from greenroom.actors._cell import Cell, State, SysItem, acting, in_supervisor
from greenroom.actors._config import RuntimeConfig, RuntimeStatistics
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
)
from greenroom.actors._supervisor import Supervisor
from greenroom.actors._supervisor_ref import SupervisorRef
from greenroom.mailbox import (
    DeadLetter,
    DeadLetterReason,
    DeadLetterSink,
    Envelope,
    IdempotencyKey,
    MailboxConfig,
    MailboxFactory,
    MemoryDeadLetters,
    MemoryMailbox,
    MemoryMailboxes,
    check_message,
    make_envelope,
)
from greenroom.trace import Tracer, current_span, format_id, new_id
from greenroom.trace._logging import logger

__all__ = ["RemoteReplies", "Runtime", "as_spec"]

RemoteReplies = Callable[[Envelope, object, BaseException | None], None]
"""Where a runtime sends the replies of asks made in another process."""

_encoder = msgspec.msgpack.Encoder()


def as_spec(
    actor: type[Actor] | Spec,
    *,
    name: str | None = None,
    args: tuple[Any, ...] = (),
    kwargs: Mapping[str, Any] | None = None,
    mailbox: MailboxConfig | None = None,
    restart: Restart = "permanent",
    retry: RetryPolicy | None = None,
    handler_timeout: float | None = None,
) -> Spec:
    """A spec for ``actor``: the spec itself, or a :class:`ChildSpec` built from the options."""
    if isinstance(actor, ChildSpec | PoolSpec | SupervisorSpec):
        if name is not None and name != actor.child_id:
            raise InvalidSpec(f"name={name!r} given with a spec whose id is {actor.child_id!r}")
        return actor
    return ChildSpec(
        actor=actor,
        id=name,
        args=args,
        kwargs=dict(kwargs or {}),
        mailbox=mailbox or MailboxConfig(),
        restart=restart,
        retry=retry or RetryPolicy(),
        handler_timeout=handler_timeout,
    )


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
        self.config = config or RuntimeConfig()
        self.tracer = tracer
        self.extensions: tuple[Extension, ...] = tuple(extensions)
        self._mailboxes: dict[str, MailboxFactory] = {"memory": MemoryMailboxes()}
        self._mailboxes.update(mailboxes or {})
        if self.config.default_mailbox not in self._mailboxes:
            raise InvalidSpec(
                f"RuntimeConfig.default_mailbox is {self.config.default_mailbox!r}, but the "
                f"runtime has only {sorted(self._mailboxes)}"
            )
        self.dead_letters: DeadLetterSink = dead_letters or MemoryDeadLetters(
            self.config.dead_letter_capacity
        )
        self.node = f"node-{id(self):x}"
        self._cells: dict[str, Cell] = {}
        self._asks: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._idle: dict[Cell, int] = {}
        self._sweeps = 0
        self._late_replies = 0
        self._remote_replies: RemoteReplies | None = None
        self._dead_letter_total = 0
        self._root: Cell | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()
        self._intake_open = True
        self._max_bytes = self.config.max_message_bytes
        self._encode = self.config.encode_messages
        self._loop: asyncio.AbstractEventLoop

    # -- lifecycle ----------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        self._loop = asyncio.get_running_loop()
        spec = SupervisorSpec(
            id="root",
            max_restarts=self.config.root_max_restarts,
            within=self.config.root_within,
        )
        root = Cell(
            self,
            "root",
            lambda: Supervisor(spec),
            Supervisor,
            MemoryMailbox(16, label="root"),
            parent=None,
            shutdown=self.config.shutdown_timeout,
        )
        root.ref = SupervisorRef(root)
        root.principal = Principal(name="root", actor_type=Supervisor, named=True)
        root.kind = self.config.default_mailbox
        self._cells["root"] = root
        self._root = root
        await self._start_cell(root)
        self._sweeper = self._loop.create_task(self._sweep(), name="greenroom-sweeper")
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
        with anyio.CancelScope(shield=True):
            if self._stopping is None:
                self._stopping = self._loop.create_task(self._stop_tree())
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
            while self._tasks:
                tasks = set(self._tasks)
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
            for future in self._asks.values():
                if not future.done():
                    future.set_exception(ActorStopped("runtime"))

    async def _stop_tree(self) -> None:
        self._intake_open = False
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
        self._intake_open = False
        with anyio.move_on_after(timeout):
            # Polled: drain is a rare shutdown step, and tracking emptiness
            # on every send would tax the hot path for it.
            while not self._quiet():  # noqa: ASYNC110
                await anyio.sleep(0.01)
            return True
        return False

    def _quiet(self) -> bool:
        return all(
            not len(c.mailbox) and c.current is None and not c.sys for c in self._cells.values()
        )

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the runtime (the root gave up), if any."""
        return self._failure

    async def _sweep(self) -> None:
        interval = self.config.idle_release
        while True:
            await anyio.sleep(interval)
            self._sweeps += 1
            limit = self._sweeps - 1
            for cell, since in list(self._idle.items()):
                if since < limit:
                    cell.retire()

    def _start_task(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.bind(event="internal_error").opt(exception=error).error(
                "greenroom internal error in {task}", task=task.get_name()
            )
            self._fail_runtime(error)

    async def wait_stopped(self) -> None:
        """Wait until the runtime stops by itself (its root gave up or exited)."""
        await self._stopped.wait()

    def _fail_runtime(self, error: BaseException | None) -> None:
        if self._failure is None and error is not None:
            self._failure = error
        self._intake_open = False
        self._stopped.set()
        if self._stopping is None:
            self._stopping = self._loop.create_task(self._stop_tree())

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
        :class:`SupervisorRef` for a supervisor). Unnamed actors get a
        unique name from their class. If the actor's ``on_start`` returned
        ``IGNORE``, the ref is one to a stopped actor.

        The actor's :class:`Principal` is bound here: called by the
        application (from outside any actor's code), entries naming the
        actor by its name apply to it (``named``); called from an actor's
        code, only entries naming its class do.

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
        if not self._intake_open or self._root.state is State.STOPPED:
            raise ActorStopped("runtime")
        return await self._start_child(self._root, spec, named=acting.get() is None)

    def ref(self, name: str) -> ActorRef:
        """The ref of the running actor called ``name``.

        Raises:
            ActorStopped: no actor of that name is running.
        """
        cell = self._cells.get(name)
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

    async def _start_child(self, supervisor: Cell, spec: Spec, *, named: bool) -> ActorRef:
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
        future: asyncio.Future[Any] = self._loop.create_future()
        supervisor.post_system(SysItem(fn, future))
        try:
            with anyio.fail_after(timeout):
                return await future
        except TimeoutError:
            raise AskTimeout(supervisor.name, "supervisor call", timeout) from None

    async def _stop_linked(self, cell: Cell) -> None:
        parent = cell.parent
        child = cell.child
        if parent is None or child is None or parent.state is State.STOPPED:
            return
        with contextlib.suppress(GreenroomError):  # gone already
            await self._call_supervisor(
                parent, lambda sup: sup.terminate_child(child.id), self.config.shutdown_timeout
            )

    def _make_cell(self, parent: Cell, spec: Spec, name: str, *, named: bool) -> Cell:
        # The principal is bound here, from the spec and the spawner, once:
        # restarts keep the cell and so the principal.
        if isinstance(spec, ChildSpec):
            cls = spec.actor
            principal = Principal(name=name, actor_type=cls, named=named)
            for extension in self.extensions:
                extension.check(principal)
            kind = spec.mailbox.kind or parent.kind
            factory = self._mailboxes.get(kind)
            if factory is None:
                raise InvalidSpec(
                    f"{name} asks for a {kind!r} mailbox, but the runtime has only "
                    f"{sorted(self._mailboxes)}; pass Runtime(mailboxes={{{kind!r}: ...}})"
                )
            mailbox = factory.create(name, spec.mailbox, tuple(dispatch_table(cls)))
            cell = Cell(
                self,
                name,
                functools.partial(cls, *spec.args, **spec.kwargs),
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
        elif isinstance(spec, PoolSpec):
            pool_spec = spec
            cell = Cell(
                self,
                name,
                lambda: Pool(pool_spec),
                Pool,
                MemoryMailbox(16, label=name),
                parent=parent,
                shutdown=spec.shutdown,
            )
            cell.kind = parent.kind
            cell.ref = PoolRef(cell)
            cell.principal = Principal(name=name, actor_type=Pool, named=named)
        else:
            sup_spec = spec
            cell = Cell(
                self,
                name,
                lambda: Supervisor(sup_spec),
                Supervisor,
                MemoryMailbox(16, label=name),
                parent=parent,
                shutdown=spec.shutdown,
            )
            cell.kind = spec.mailbox_kind or parent.kind
            cell.ref = SupervisorRef(cell)
            cell.principal = Principal(name=name, actor_type=Supervisor, named=named)
        return cell

    async def _start_cell(self, cell: Cell) -> bool:
        if not self._intake_open and cell.parent is not None:
            raise ActorStopped("runtime")
        existing = self._cells.get(cell.name)
        if existing is not None and existing is not cell:
            raise NameTaken(cell.name)
        self._cells[cell.name] = cell
        try:
            started = await cell.start()
        except BaseException:
            cell.close()
            raise
        if not started:
            cell.close()
        return started

    def _unregister(self, cell: Cell) -> None:
        if self._cells.get(cell.name) is cell:
            del self._cells[cell.name]

    # -- the message path ---------------------------------------------------

    def _envelope(
        self,
        cell: Cell,
        body: object,
        *,
        ask: bool = False,
        timeout: float | None = None,
        key: IdempotencyKey | None = None,
    ) -> Envelope:
        try:
            bound = check_message(body)
        except InvalidMessage as exc:
            self._refuse(cell, body, "invalid_message", exc)
            raise
        limit = self._max_bytes
        if self._encode or (limit is not None and (bound is None or bound > limit)):
            body = self._check_encoding(cell, body)
        if not self._intake_open and current_span.get() is None:
            closed = MailboxClosed(cell.name)
            self._refuse(cell, body, "actor_stopped", closed)
            raise closed
        if not ask:
            return make_envelope(cell.name, body, key=key)
        envelope = make_envelope(cell.name, body, reply_to=self.node, key=key)
        envelope.correlation_id = envelope.id
        if timeout is not None:
            envelope.deadline = envelope.created_at + timeout
        return envelope

    def _check_encoding(self, cell: Cell, body: object) -> object:
        try:
            data = _encoder.encode(body)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            error = InvalidMessage(type(body).__qualname__, f"it cannot be encoded: {exc}")
            self._refuse(cell, body, "invalid_message", error)
            raise error from exc
        limit = self._max_bytes
        if limit is not None and len(data) > limit:
            too_large = MessageTooLarge(type(body).__qualname__, len(data), limit)
            self._refuse(cell, body, "too_large", too_large)
            raise too_large
        if self._encode:
            return msgspec.msgpack.decode(data, type=type(body))
        return body

    def _refuse(self, cell: Cell, body: object, reason: DeadLetterReason, error: Exception) -> None:
        envelope = make_envelope(cell.name, body)
        self._dead_letter(envelope, cell.name, reason, ErrorInfo.from_exception(error))

    async def _put(self, cell: Cell, envelope: Envelope, timeout: float | None) -> None:
        mailbox = cell.mailbox
        durable = cell.durable
        try:
            # A durable mailbox's offer is fire-and-forget: tell and ask wait
            # for the commit in put instead.
            if not durable and mailbox.offer(envelope):
                return
        except MailboxClosed as exc:
            raise self._closed(cell, envelope, exc) from None
        if cell.overflow_fail and (not durable or len(mailbox) >= mailbox.capacity):
            full = MailboxFull(cell.name, mailbox.capacity)
            self._dead_letter(envelope, cell.name, "mailbox_full", ErrorInfo.from_exception(full))
            raise full
        try:
            if timeout is None:
                await mailbox.put(envelope)
            else:
                with anyio.fail_after(timeout):
                    await mailbox.put(envelope)
        except MailboxClosed as exc:
            raise self._closed(cell, envelope, exc) from None
        except TimeoutError:
            raise AskTimeout(cell.name, type(envelope.body).__qualname__, timeout or 0) from None

    def _put_nowait(self, cell: Cell, envelope: Envelope) -> None:
        mailbox = cell.mailbox
        try:
            if mailbox.offer(envelope):
                return
        except MailboxClosed as exc:
            raise self._closed(cell, envelope, exc) from None
        full = MailboxFull(cell.name, mailbox.capacity)
        self._dead_letter(envelope, cell.name, "mailbox_full", ErrorInfo.from_exception(full))
        raise full

    def _closed(self, cell: Cell, envelope: Envelope, exc: Exception) -> ActorStopped:
        stopped = ActorStopped(cell.name, type(envelope.body).__qualname__)
        self._dead_letter(envelope, cell.name, "actor_stopped", ErrorInfo.from_exception(stopped))
        return stopped

    def route_remote_replies(self, sink: RemoteReplies | None) -> None:
        """Send the replies of asks made in other processes to ``sink``.

        An ask whose envelope names another node in ``reply_to`` (one that
        came through a mailbox shared between processes) has no waiter
        here; ``sink(envelope, result, error)`` carries its reply back
        (``error`` is ``None`` on success). Without a sink, such replies are
        counted as late and dropped. ``None`` removes the sink.
        """
        self._remote_replies = sink

    def _reply(self, envelope: Envelope, result: object) -> None:
        future = self._asks.pop(envelope.correlation_id, None)  # type: ignore[arg-type]
        if future is None or future.done():
            self._miss(envelope, result, None)
            return
        future.set_result(result)

    def _reply_error(self, envelope: Envelope, error: BaseException) -> None:
        future = self._asks.pop(envelope.correlation_id, None)  # type: ignore[arg-type]
        if future is None or future.done():
            self._miss(envelope, None, error)
            return
        future.set_exception(error)

    def _miss(self, envelope: Envelope, result: object, error: BaseException | None) -> None:
        sink = self._remote_replies
        if sink is not None and envelope.reply_to not in (None, self.node):
            sink(envelope, result, error)
            return
        self._late_replies += 1

    def _unknown_message(self, cell: Cell, envelope: Envelope) -> None:
        cell.mailbox.ack(envelope)
        accepted = tuple(sorted(t.__qualname__ for t in cell.dispatch))
        error = UnknownMessage(cell.name, type(envelope.body).__qualname__, accepted)
        self._dead_letter(envelope, cell.name, "unknown_message", ErrorInfo.from_exception(error))
        if envelope.correlation_id is not None:
            self._reply_error(envelope, error)

    def _undeliverable(self, cell: Cell, envelope: Envelope) -> None:
        error = ActorStopped(cell.name, type(envelope.body).__qualname__)
        if not cell.durable:
            # A durable message is still on disk, unacked: the actor's next
            # incarnation gets it. Only the ask waiting in this process fails.
            self._dead_letter(envelope, cell.name, "actor_stopped", ErrorInfo.from_exception(error))
        if envelope.correlation_id is not None:
            self._reply_error(envelope, error)

    def _trace_event(
        self,
        kind: str,
        name: str,
        actor: str,
        where: Envelope | tuple[int, int] | None,
        attributes: dict[str, object],
        error: ErrorInfo | None = None,
    ) -> None:
        """Record an instant span (a supervisor action, a dead letter).

        ``where`` is the span it belongs under: a delivery (its current
        attempt's span) or ``(trace_id, span_id)``; ``None`` starts a trace.
        A retry or restart is an ``ok`` span naming its cause; a dead letter
        or an escalation is a failed span with the error.
        """
        tracer = self.tracer
        if tracer is None:
            return
        now = time.time()
        if where is None:
            trace_id, parent = new_id(), None
        elif isinstance(where, tuple):
            trace_id, parent = where
        else:
            trace_id, parent = where.trace_id, where.span_id
        if error is not None and name in ("retry", "restart"):
            # An action taken because of a failure is not itself one.
            attributes["greenroom.cause"] = f"{error.type}: {error.message}"
            error = None
        tracer.record(trace_id, new_id(), parent, kind, name, actor, now, now, error, attributes)

    def _dead_letter(
        self, envelope: Envelope, actor: str, reason: DeadLetterReason, error: ErrorInfo
    ) -> None:
        self._trace_event(
            "supervisor",
            "dead_letter",
            actor,
            envelope,
            {"greenroom.reason": reason, "greenroom.attempt": envelope.attempt},
            error,
        )
        self._dead_letter_total += 1
        letter = DeadLetter(envelope=envelope, actor=actor, reason=reason, error=error)
        self.dead_letters.add(letter)
        logger.bind(
            actor=actor, event="dead_letter", reason=reason, trace_id=format_id(envelope.trace_id)
        ).warning(
            "dead letter for {actor}: {reason}: {error}",
            actor=actor,
            reason=reason,
            error=f"{error.type}: {error.message}",
        )

    # -- the root -------------------------------------------------------------

    def _root_failed(self, cell: Cell, error: Exception) -> None:
        logger.bind(event="root_failed").error("the root supervisor gave up: {error}", error=error)
        self._fail_runtime(error)

    def _root_exited(self, cell: Cell) -> None:
        self._fail_runtime(None)

    def statistics(self) -> RuntimeStatistics:
        """A snapshot of the runtime's counters."""
        return RuntimeStatistics(
            actors=len(self._cells),
            tasks=len(self._tasks),
            idle_tasks=len(self._idle),
            pending_asks=len(self._asks),
            late_replies=self._late_replies,
            dead_letters=self._dead_letter_total,
        )
