"""The cell: one actor's mailbox, current instance and the loop that feeds it.

A restart replaces the instance and keeps the mailbox, so messages queued for
a failing actor are handled by its successor, in order. An idle cell holds no
task: the first message to an empty mailbox starts one, which drains up to
``throughput`` messages between yields, lingers on a future while idle, and is
released by the runtime's sweeper after a while without messages.
"""

from __future__ import annotations

import asyncio
import enum
import math
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

import anyio

from greenroom._errors import ActorStopped, ErrorInfo, HandlerError, HandlerTimeout
from greenroom.actors._actor import IGNORE, Actor, HandlerFn, dispatch_table, resolve_handler
from greenroom.actors._context import ActorContext
from greenroom.actors._principal import Principal
from greenroom.actors._spec import ChildSpec
from greenroom.actors._watch import Watches, cell_closed, note_end
from greenroom.mailbox import Envelope, Mailbox
from greenroom.trace import MessageRow, attempt_span_id, current_span, current_tracer
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors._extension import Extension
    from greenroom.actors._forward import Deferred
    from greenroom.actors._ref import ActorRef
    from greenroom.actors._system import System

__all__ = ["Cell", "State", "SysItem", "acting", "in_supervisor"]

in_supervisor: ContextVar[Cell | None] = ContextVar("greenroom_in_supervisor", default=None)
"""The supervisor whose code is running: a call into it from there (``ctx.spawn``
in a child's ``on_start``) runs directly instead of queueing behind itself."""

acting: ContextVar[Cell | None] = ContextVar("greenroom_acting", default=None)
"""The actor whose task (or a task it started) is running: tells a spawn by an
actor's code from one by the application (see ``Principal.named``)."""

_time = time.time
_UNWIND = 0.1
"""Seconds a cancelled handler gets to unwind (its ``finally`` blocks) once the
grace period is over; cancellation is a request in asyncio, not OTP's kill."""
_set_span = current_span.set


class State(enum.Enum):
    """Where a cell is in its life."""

    NEW = "new"
    RUNNING = "running"
    FAILED = "failed"  # its handler raised; its supervisor decides
    EXITING = "exiting"  # it asked to stop; its supervisor stops it
    STOPPING = "stopping"
    RESTARTING = "restarting"
    IGNORED = "ignored"
    STOPPED = "stopped"


class SysItem:
    """A system message: supervisor work run in the cell's task, ahead of user messages."""

    __slots__ = ("fn", "future")

    def __init__(
        self, fn: Callable[[Any], Awaitable[Any]], future: asyncio.Future[Any] | None = None
    ) -> None:
        self.fn = fn
        self.future = future

    def drop(self, name: str) -> None:
        """The item will never run: fail its caller, if one waits."""
        if self.future is not None and not self.future.done():
            self.future.set_exception(ActorStopped(name))


class Cell:
    """One actor's mailbox, instance and message loop. Internal to the runtime."""

    __slots__ = (
        "__weakref__",
        "_context",
        "actor",
        "child",
        "current",
        "deferred",
        "dispatch",
        "durable",
        "factory",
        "failures",
        "handler_timeout",
        "keyed",
        "kind",
        "links",
        "mailbox",
        "name",
        "overflow_fail",
        "parent",
        "principal",
        "ref",
        "services",
        "shutdown",
        "state",
        "stopped",
        "supervisor",
        "sys",
        "system",
        "task",
        "throughput",
        "timers",
        "waiter",
        "watches",
    )

    def __init__(
        self,
        system: System,
        name: str,
        factory: Callable[[], Actor] | ChildSpec,
        actor_type: type[Actor],
        mailbox: Mailbox,
        *,
        parent: Cell | None,
        overflow_fail: bool = False,
        shutdown: float | str = 5.0,
        handler_timeout: float | None = None,
        throughput: int = 64,
        supervisor: bool = False,
    ) -> None:
        self.system = system
        self.supervisor = supervisor  # its actor is a Supervisor (or a Pool)
        self.name = name
        self.factory = factory
        self._context: ActorContext | None = None
        self.dispatch: dict[type, HandlerFn] = dispatch_table(actor_type)
        self.mailbox = mailbox
        self.durable = mailbox.durable
        self.kind = "memory"  # for supervisors: the mailbox kind of their subtree
        self.parent = parent
        self.overflow_fail = overflow_fail
        self.shutdown = shutdown
        self.handler_timeout = handler_timeout
        self.throughput = throughput
        self.actor: Actor | None = None
        self.child: Any = None  # the supervisor's record of this cell
        self.principal: Principal = Principal(name=name, actor_type=actor_type, named=False)
        self.ref: ActorRef = cast("ActorRef", None)  # set by the runtime right after
        self.state = State.NEW
        self.stopped = False  # closed for good: refs look the name up again
        self.task: asyncio.Task[None] | None = None
        self.waiter: asyncio.Future[bool] | None = None
        self.sys: deque[SysItem] | None = None  # made on first use: most cells never need it
        self.current: Envelope | None = None
        self.timers: set[Any] | None = None
        self.links: list[Cell] | None = None
        self.keyed: dict[int, asyncio.Future[Any]] | None = None  # keyed asks in flight
        self.deferred: weakref.WeakSet[Deferred] | None = None  # deferred asks not settled
        self.services: dict[type, tuple[object, Extension]] | None = None
        self.failures = 0
        self.watches: Watches | None = None  # death watch (see _watch), made on first use
        # The cell itself is the listener (Cell.__call__ is wake): a bound
        # method would be one more GC-tracked object for every actor.
        mailbox.set_listener(self)

    def __repr__(self) -> str:
        return f"<Cell {self.name} {self.state.value}>"

    # -- scheduling -------------------------------------------------------

    def wake(self) -> None:
        """There is work (a message or a system item): make sure a task runs it."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None  # its entry in system.idle goes stale: the sweeper drops it
            if not waiter.done():
                waiter.set_result(False)
        elif self.task is None and self.state is State.RUNNING:
            # Only a running cell gets a task: a supervisor's system items must
            # not run beside its own start or stop (which run in its parent's
            # task); they wait for the running state, or are dropped by close.
            self.task = self.system.start_task(self._run(), self.name)

    __call__ = wake  # the mailbox's listener (see __init__)

    def retire(self) -> None:
        """Release the task of an idle cell; the next message starts a new one."""
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            self.task = None
            if not waiter.done():
                waiter.set_result(True)

    def post_system(self, item: SysItem) -> None:
        """Queue supervisor work for this cell's task; fails the item if the cell is gone."""
        if self.state is State.STOPPED:
            item.drop(self.name)
            return
        if self.sys is None:
            self.sys = deque()
        self.sys.append(item)
        self.wake()

    async def _run(self) -> None:
        # The hot loop: handling is inlined (no coroutine per message besides
        # the handler's) and everything it touches per message is a local.
        mailbox = self.mailbox
        get = mailbox.get_nowait
        ack = mailbox.ack if self.durable else None  # a memory ack does nothing
        dispatch = self.dispatch
        system = self.system
        throughput = self.throughput
        handler_timeout = self.handler_timeout
        running = State.RUNNING
        tracer = system.tracer
        record = None if tracer is None else tracer.record_message  # with an error
        append: Callable[[MessageRow], None] | None = None
        appended = None
        if tracer is not None:
            current_tracer.set(tracer)  # this task's context only
            append, appended = tracer.message_rows()
        rows = 0  # appended, not yet told: told every `throughput` messages and when idle
        actor_name = self.name
        new_future = system.loop.create_future
        idle = system.idle
        acting.set(self)  # this task's context only

        # One clock read per traced message: a message handled right after
        # another starts when that one ended (0.0: the clock must be read).
        start = 0.0
        n = 0
        try:
            while True:
                sys = self.sys
                if sys:
                    await self._run_system(sys.popleft())
                    start = 0.0
                    continue
                if self.state is not running:
                    return
                envelope = get()
                if envelope is None:
                    if rows:
                        appended(rows)  # type: ignore[misc]
                        rows = 0
                    # Pause (linger) until there is work: inlined, because every
                    # ask and every fan-out message ends in one.
                    waiter = new_future()
                    self.waiter = waiter
                    idle[self] = system.sweeps  # one store: the sweep drops stale entries
                    try:
                        released = await waiter
                    except BaseException:
                        if self.waiter is waiter:
                            self.waiter = None
                        raise
                    if released:
                        return  # the sweeper released this idle task
                    start = 0.0
                    continue
                body = envelope.body
                fn = dispatch.get(type(body))
                if fn is None and (fn := resolve_handler(dispatch, type(body))) is None:
                    system.unknown_message(self, envelope)
                    continue
                self.current = envelope
                # The span sends from the handler join. Not reset after it: the
                # next message sets it again, and nothing else this task runs
                # reads it (a reset would cost a second context change each time).
                _set_span(envelope)
                if record is not None and not start:
                    start = _time()
                try:
                    if handler_timeout is None:
                        result = await fn(self.actor, body)
                    else:
                        result = await self._handle_with_deadline(fn, body, handler_timeout)
                except Exception as exc:
                    self.current = None
                    if record is not None:
                        record(envelope, envelope.attempt, actor_name, start, _time(), exc)
                    self.fail(envelope, exc)
                    return
                self.current = None
                if append is not None:
                    end = _time()
                    attempt = envelope.attempt
                    message_id = envelope.id
                    append(
                        MessageRow(
                            message_id if attempt == 1 else attempt_span_id(message_id, attempt),
                            envelope.trace_id,
                            envelope.parent_span_id,
                            type(body).__qualname__,
                            actor_name,
                            start,
                            end,
                        )
                    )
                    rows += 1
                    start = end
                if ack is not None:
                    ack(envelope)
                reply = envelope.reply
                if reply is not None:  # a local ask: the future travels in the envelope
                    if reply.done():
                        system.late_replies += 1
                    else:
                        reply.set_result(result)
                elif envelope.correlation_id is not None:
                    system.reply(envelope, result)  # an ask from another process
                n += 1
                if n >= throughput:
                    n = 0
                    if rows:
                        appended(rows)  # type: ignore[misc]
                        rows = 0
                    await asyncio.sleep(0)
                    start = 0.0
        finally:
            if rows:
                appended(rows)  # type: ignore[misc]
            if self.task is asyncio.current_task():
                self.task = None

    async def _run_system(self, item: SysItem) -> None:
        future = item.future
        token = in_supervisor.set(self)
        try:
            result = await item.fn(self.actor)
        except Exception as exc:
            if future is not None:
                if not future.done():
                    future.set_exception(exc)
            else:
                # Supervisor code that raised (an escalation): this cell has failed.
                self.fail(None, exc)
        else:
            if future is not None and not future.done():
                future.set_result(result)
        finally:
            in_supervisor.reset(token)

    # -- handling ----------------------------------------------------------

    async def _handle_with_deadline(self, fn: HandlerFn, body: object, timeout: float) -> Any:
        with anyio.CancelScope(deadline=anyio.current_time() + timeout):
            return await fn(self.actor, body)
        raise HandlerTimeout(self.name, type(body).__qualname__, timeout)

    def fail(self, envelope: Envelope | None, error: Exception) -> None:
        """The running instance failed: settle its message, then tell the supervisor.

        The message is settled first: put back at the head (attempt + 1, so
        the sender's order holds) if the :class:`RetryPolicy` allows and the
        child is not ``temporary``, else dead-lettered, its ask failed with
        :class:`HandlerError`. The report carries the retry's backoff delay,
        which the restart waits at least. A failure while being stopped is
        only settled (retried only on a restart) and logged, not reported.
        """
        stopping = self.state is State.STOPPING or self.state is State.RESTARTING
        self.failures += 1
        note_end(self, error)
        self._cancel_timers()
        delay = 0.0
        failure: HandlerError | None = None
        # The span it failed in: read before a retry moves the envelope to its next attempt.
        failed_at = None if envelope is None else (envelope.trace_id, envelope.span_id)
        if envelope is not None:
            delay, failure = self._settle_failed(
                envelope, error, retry=self.state is not State.STOPPING
            )
        if stopping:
            logger.bind(actor=self.name, event="failed_while_stopping").warning(
                "{actor} failed while being stopped: {error!r}", actor=self.name, error=error
            )
        else:
            self.state = State.FAILED
            parent = self.parent
            if parent is None:
                self.system.root_failed(error)
            else:
                instance = self.actor
                parent.post_system(
                    SysItem(lambda sup: sup._child_failed(self, error, instance, delay, failed_at))
                )
        if failure is not None:
            # Answered after the report is queued, so the supervisor acts on
            # the failure before the asker resumes (the report is ahead of it).
            self.system.fail_ask(envelope, failure)  # type: ignore[arg-type]

    def _settle_failed(
        self, envelope: Envelope, error: Exception, *, retry: bool
    ) -> tuple[float, HandlerError | None]:
        """Retry or dead-letter; the retry's delay and a dead-lettered ask's error."""
        system = self.system
        spec: Any = getattr(self.child, "spec", None)  # a ChildSpec, for a worker
        policy = getattr(spec, "retry", None)
        if (
            retry
            and policy is not None
            and spec.restart != "temporary"
            and policy.should_retry(error, envelope.attempt)
        ):
            delay: float = policy.backoff.delay(envelope.attempt)
            if system.tracer is not None:
                # Recorded as the supervisor's action, as before the move, so
                # a trace reads the same (kind "supervisor", its actor's name).
                supervisor = self.name if self.parent is None else self.parent.name
                system.trace_event(
                    "supervisor",
                    "retry",
                    supervisor,
                    envelope,
                    {
                        "greenroom.child": self.name,
                        "greenroom.attempt": envelope.attempt + 1,
                        "greenroom.delay": delay,
                    },
                    ErrorInfo.from_exception(error),
                )
            envelope.attempt += 1
            self.mailbox.requeue(envelope)
            return delay, None
        info = ErrorInfo.from_exception(error)
        self.mailbox.ack(envelope)
        system.dead_letter(envelope, self.name, "handler_failed", info)
        if envelope.reply is None and envelope.correlation_id is None:
            return 0.0, None
        failure = HandlerError(self.name, type(envelope.body).__qualname__, info, envelope.attempt)
        failure.__cause__ = error
        return 0.0, failure

    def request_exit(self) -> None:
        """The actor asked to stop: finish the current handler, then its supervisor stops it."""
        if self.state is not State.RUNNING:
            return
        self.state = State.EXITING
        note_end(self, None)
        parent = self.parent
        if parent is None:
            self.system.root_failed(None)
        else:
            instance = self.actor
            parent.post_system(SysItem(lambda sup: sup._child_exited(self, instance)))

    # -- lifecycle (run by the supervisor, in its task) -------------------

    def context(self) -> ActorContext:
        """``self.ctx`` of the actor: made on first use (an idle actor never needs one)."""
        ctx = self._context
        if ctx is None:
            ctx = self._context = ActorContext(self)
        return ctx

    def _new_actor(self) -> Actor:
        factory = self.factory
        if type(factory) is ChildSpec:
            actor = factory.actor(*factory.args, **factory.kwargs)
        else:
            actor = factory()  # type: ignore[operator]
        actor._gr_cell = self
        self.actor = actor
        return actor

    async def start(self) -> bool:
        """Make an instance and run ``on_start``; ``False`` if it returned IGNORE.

        Raises whatever the constructor or ``on_start`` raised.
        """
        result = await self._new_actor().on_start()
        if result is IGNORE:
            self.state = State.IGNORED
            self.actor = None
            return False
        self._set_running()
        return True

    async def restart(self, error: ErrorInfo) -> None:
        """Replace the instance after a failure; the mailbox and its messages are kept.

        Raises whatever the constructor or ``on_restart`` raised.
        """
        if self.state is not State.RESTARTING:
            await self.halt(requeue=True)
        self.state = State.RESTARTING
        self._fail_system_items()
        try:
            await self._new_actor().on_restart(error)
        except Exception as exc:
            note_end(self, exc)  # if the cell now stops, this is why
            raise
        self._set_running()

    def _set_running(self) -> None:
        self.state = State.RUNNING
        if self.sys or len(self.mailbox):
            self.wake()

    async def halt(self, *, requeue: bool) -> None:
        """Stop the current instance within one deadline, ``shutdown`` seconds away.

        The current handler may finish until then, else it is cancelled (and
        not waited for beyond a brief unwind); ``on_stop`` gets what is left
        and is cut short at the deadline. ``"brutal_kill"`` cancels at once
        and skips ``on_stop``; ``math.inf`` waits as long as it takes. A
        cancelled handler's message is requeued at the head if ``requeue``
        (the instance will be replaced), failed otherwise. Queued system items
        are dropped first (a supervisor in a restart loop stops promptly);
        then services are released and linked children stopped.
        """
        was = self.state
        self.state = State.RESTARTING if requeue else State.STOPPING
        self._cancel_timers()
        self._fail_system_items()
        self.retire()
        shutdown = self.shutdown
        brutal = shutdown == "brutal_kill"
        loop = self.system.loop
        grace = 0.0 if brutal else float(shutdown)
        deadline = loop.time() + grace

        def remaining() -> float:
            return max(0.0, deadline - loop.time())

        task = self.task
        if task is not None and task is not asyncio.current_task():
            done: set[asyncio.Task[None]] = set()
            if not brutal:
                done, _ = await asyncio.wait(
                    {task}, timeout=None if math.isinf(grace) else remaining()
                )
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=_UNWIND)
        self.task = None
        envelope = self.current
        if envelope is not None:
            self.current = None
            if requeue:
                envelope.attempt += 1
                self.mailbox.requeue(envelope)
            else:
                self.system.undeliverable(self, envelope)
        actor = self.actor
        if actor is not None and was in (State.RUNNING, State.EXITING, State.FAILED):
            if brutal:
                actor._gr_kill()
            else:
                with anyio.move_on_after(remaining()) as scope:
                    try:
                        await actor.on_stop()
                    except Exception as exc:
                        logger.bind(actor=self.name, event="on_stop_failed").opt(
                            exception=exc
                        ).warning("{actor}: on_stop raised {error!r}", actor=self.name, error=exc)
                if scope.cancelled_caught:
                    actor._gr_kill()
        left = remaining()
        if left > 0:
            await self._release_services(left)
        else:
            self._release_later()
        links = self.links
        if links:
            self.links = None
            for linked in reversed(links):
                if linked.state is not State.STOPPED and linked.child is not None:
                    await linked.system.stop_linked(linked)

    async def _release_services(self, timeout: float) -> None:
        services = self.services
        if not services:
            return
        self.services = None
        with anyio.move_on_after(timeout):
            for service, extension in services.values():
                try:
                    await extension.release(service)
                except Exception as exc:
                    logger.bind(actor=self.name, event="release_failed").opt(exception=exc).warning(
                        "{actor}: releasing {service!r} raised", actor=self.name, service=service
                    )

    async def stop(self) -> None:
        """Stop for good: halt, close the mailbox, fail what is left, unregister."""
        if self.state is State.STOPPED:
            return
        if self.state not in (State.NEW, State.IGNORED):
            await self.halt(requeue=False)
        self.close()

    def kill(self) -> None:
        """Stop at once (a stop that ran out of time): cancel the task, skip
        ``on_stop``, kill a supervisor's children, then :meth:`close`."""
        if self.state is State.STOPPED:
            return
        task = self.task
        self.task = None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        envelope = self.current
        self.current = None
        if envelope is not None:
            self.system.undeliverable(self, envelope)
        if self.actor is not None:
            self.actor._gr_kill()
        self._release_later()
        self.close()

    def _release_later(self) -> None:
        # No grace left: release in the background, still bounded.
        if self.services:
            timeout = self.system.config.shutdown_timeout
            self.system.start_task(self._release_services(timeout), f"{self.name}:release")

    def close(self) -> None:
        """Close the mailbox and fail everything still in it; the cell is stopped."""
        self.state = State.STOPPED
        self.stopped = True
        self._cancel_timers()
        self.retire()
        for envelope in self.mailbox.close():
            self.system.undeliverable(self, envelope)
        self._fail_deferred()
        self._fail_system_items()
        self.system.unregister(self)
        cell_closed(self)

    def _fail_deferred(self) -> None:
        deferred = self.deferred
        if deferred:
            self.deferred = None
            for held in list(deferred):
                if not held.settled:
                    held.fail(ActorStopped(self.name, type(held.body).__qualname__))

    def _fail_system_items(self) -> None:
        while self.sys:
            self.sys.popleft().drop(self.name)

    def _cancel_timers(self) -> None:
        timers = self.timers
        if timers:
            self.timers = None
            for timer in list(timers):
                timer.cancel()
