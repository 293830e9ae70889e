"""``self.ctx``: what an actor can do besides handling its messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

import msgspec

from greenroom._errors import (
    ActorStopped,
    GreenroomError,
    InvalidSpec,
    MailboxClosed,
    MailboxFull,
    UsageError,
)
from greenroom.actors._actor import resolve_handler
from greenroom.actors._forward import Deferred, send_onward
from greenroom.actors._principal import Principal
from greenroom.actors._ref import ActorRef
from greenroom.actors._spec import Spec, as_spec
from greenroom.actors._watch import Terminated, Watchable, unwatch, watch_cell, watch_remote
from greenroom.mailbox import Envelope, MailboxConfig, check_message
from greenroom.trace import current_span, format_id
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    import loguru

    from greenroom.actors._actor import Actor
    from greenroom.actors._cell import Cell
    from greenroom.actors._runtime import Runtime
    from greenroom.mailbox import IdempotencyKey, Message, Request

__all__ = ["ActorContext", "Timer"]

T = TypeVar("T")
R = TypeVar("R")
W = TypeVar("W", bound="ActorRef | Watchable")


class Timer:
    """A scheduled message to the actor itself; cancel it with :meth:`cancel`.

    Timers are cancelled when their actor stops or restarts. A tick that
    finds the mailbox full is a dead letter (``mailbox_full``), not a wait.
    """

    __slots__ = ("_body", "_cell", "_due", "_handle", "_interval", "cancelled")

    def __init__(self, cell: Cell, body: object, delay: float, interval: float | None) -> None:
        self._cell = cell
        self._body = body
        self._interval = interval
        self.cancelled = False
        loop = cell.system.loop
        self._due = loop.time() + delay
        self._handle = loop.call_at(self._due, self._fire)

    def cancel(self) -> None:
        """Stop the timer; a tick not yet sent is not sent."""
        self.cancelled = True
        self._handle.cancel()
        if self._cell.timers is not None:
            self._cell.timers.discard(self)

    def _fire(self) -> None:
        if self.cancelled:
            return
        cell = self._cell
        system = cell.system
        if self._interval is None:
            self.cancel()  # done: off the cell's timers
        else:
            # Fixed rate: the next tick is due one interval after this one was.
            self._due = max(self._due + self._interval, system.loop.time())
            self._handle = system.loop.call_at(self._due, self._fire)
        try:
            envelope = system.envelope(cell, self._body)
        except GreenroomError:
            return  # refused (the runtime is draining): the refusal is a dead letter
        try:
            cell.mailbox.put_nowait(envelope)
        except MailboxFull as exc:
            system.dead_letter(envelope, cell.name, "mailbox_full", exc)
        except MailboxClosed as exc:
            system.dead_letter(envelope, cell.name, "actor_stopped", exc)


class ActorContext:
    """An actor's view of the runtime: ``self.ctx`` inside handlers and hooks."""

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def name(self) -> str:
        """The actor's name, unique in its runtime."""
        return self._cell.name

    @property
    def ref(self) -> ActorRef:
        """A ref to this actor."""
        return self._cell.ref

    @property
    def runtime(self) -> Runtime:
        """The runtime the actor runs in."""
        return self._cell.system.runtime

    @property
    def parent(self) -> ActorRef | None:
        """A ref to the actor's supervisor (``None`` for the root)."""
        parent = self._cell.parent
        return None if parent is None else parent.ref

    @property
    def failures(self) -> int:
        """How often this actor's handlers failed since its supervisor started it.

        Kept across restarts, so ``on_restart`` can tell a first failure from a repeated one.
        """
        return self._cell.failures

    @property
    def actor_type(self) -> type[Actor]:
        """The class the runtime spawned the actor from (its principal's ``actor_type``)."""
        return cast("type[Actor]", self._cell.principal.actor_type)

    @property
    def principal(self) -> Principal:
        """Who the actor is, as the runtime bound it at spawn (kept across restarts)."""
        return self._cell.principal

    def service(self, kind: type[T]) -> T:
        """The service of type ``kind`` an extension of the runtime gives this instance.

        Made on first use, released when the instance stops or restarts; for
        example ``self.ctx.service(StoreView)`` with a ``StoreAccess`` extension.

        Raises:
            UsageError: no extension of the runtime provides ``kind``.
        """
        cell = self._cell
        services = cell.services
        if services is None:
            services = cell.services = {}
        found = services.get(kind)
        if found is not None:
            return found[0]  # type: ignore[return-value]
        for extension in cell.system.extensions:
            if issubclass(extension.service_type, kind):
                made = extension.create(self)
                services[kind] = (made, extension)
                return made  # type: ignore[return-value]
        raise UsageError(
            f"no extension of this runtime provides {kind.__qualname__}; pass one to "
            f"Runtime(extensions=[...]) (for the store: greenroom.store.StoreAccess(store))"
        )

    @property
    def envelope(self) -> Envelope | None:
        """The envelope of the message being handled (``None`` outside a handler)."""
        return self._cell.current

    @property
    def queued(self) -> int:
        """Messages waiting in this actor's mailbox, not counting the one being handled."""
        return len(self._cell.mailbox)

    @property
    def log(self) -> loguru.Logger:
        """A loguru logger bound to the actor and the current trace and span ids."""
        span = current_span.get()
        return logger.bind(
            actor=self._cell.name,
            trace_id=None if span is None else format_id(span.trace_id),
            span_id=None if span is None else format_id(span.span_id),
        )

    async def tell(
        self, ref: ActorRef, body: Message, *, idempotency_key: IdempotencyKey | None = None
    ) -> None:
        """``ref.tell(body)``, as part of the current trace (so is a plain ``ref.tell``).

        A request of its own (its own causation: see :class:`~greenroom.Envelope`);
        a handler redelivered after a crash sends it again under a new id
        unless it passes an ``idempotency_key`` derived from the message it
        handles (``f"{msg.order}/charge"``). Raises as ``ActorRef.tell``.
        """
        await ref.tell(body, idempotency_key=idempotency_key)

    @overload
    async def ask(
        self,
        ref: ActorRef,
        body: Request[R],
        *,
        timeout: float | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> R: ...
    @overload
    async def ask(
        self,
        ref: ActorRef,
        body: Message,
        *,
        timeout: float | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object: ...
    async def ask(
        self,
        ref: ActorRef,
        body: Message,
        *,
        timeout: float | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object:
        """``ref.ask(body, timeout=timeout)``, as part of the current trace.

        A request of its own, as :meth:`tell`; typed as ``ActorRef.ask`` (``R``
        for a ``Request[R]``, ``object`` otherwise). Raises as ``ActorRef.ask``.
        """
        return await ref.ask(body, timeout=timeout, idempotency_key=idempotency_key)

    async def forward(self, target: ActorRef, body: Message | None = None) -> None:
        """Hand the message being handled (or ``body`` instead) to ``target``, which answers.

        Akka's ``forward``. The new envelope keeps the current one's ask
        (``reply`` / ``reply_to``, ``correlation_id``), ``deadline`` and
        causation, and is a child of the current span. Keeping the causation
        means it serves the same request: ``target``'s ledger steps are keyed
        by it, so a forward repeated after this actor was redelivered does
        not run them twice. Once sent, ``target``'s return value is the reply,
        not this handler's; if ``target`` fails past its retry policy, stops
        with the message queued or has no handler for it, the asker gets
        :class:`HandlerError`, :class:`ActorStopped` or
        :class:`UnknownMessage`, as if it had asked ``target``.

        A pool ref routes ``body`` as ``tell`` would. Only the first forward
        of a delivery carries its ask; another is a tell. A full mailbox is
        waited on (overflow ``"wait"``) until the deadline. If this handler
        raises after forwarding, the message is retried per policy as a tell.

        Raises:
            UsageError: called outside a handler.
            ActorStopped: ``target`` is stopped; the message is a dead letter
                there, and the ask is still this handler's to answer.
            MailboxFull, AskTimeout, InvalidMessage, MessageTooLarge: as
                ``tell``; the ask is still this handler's to answer.
        """
        envelope = self._current("forward")
        payload = envelope.body if body is None else body
        await send_onward(envelope, target, payload, parent=None)
        _take_ask(envelope)  # only now: a failed send leaves the ask here

    def defer(self) -> Deferred:
        """Take the answer to the message being handled out of this handler.

        This handler's return value is then not the reply; settle the
        returned :class:`Deferred` once, now or from a later handler.

        Raises:
            UsageError: called outside a handler.
        """
        envelope = self._current("defer")
        held = msgspec.structs.replace(envelope)
        _take_ask(envelope)
        return Deferred(self._cell, held)

    def _current(self, what: str) -> Envelope:
        envelope = self._cell.current
        if envelope is None:
            raise UsageError(
                f"ctx.{what}() acts on the message being handled; call it inside a handler of "
                f"{self._cell.name}, before it returns"
            )
        return envelope

    async def spawn(
        self,
        actor: type[Actor] | Spec,
        *,
        name: str | None = None,
        args: tuple[Any, ...] = (),
        kwargs: Mapping[str, Any] | None = None,
        mailbox: MailboxConfig | None = None,
    ) -> ActorRef:
        """Start an actor linked to this one.

        The new actor is a child of this actor's supervisor (``temporary``
        unless a spec says otherwise; a supervisor adds a child to itself),
        stopped when this actor stops or restarts. This actor chose the name,
        so the new actor's principal is not ``named``: only entries naming
        its class apply to it.

        Raises:
            InvalidSpec: the spec or its arguments are invalid.
            ChildStartFailed: the new actor's ``on_start`` raised.
            ActorStopped: this actor's supervisor is stopped.
        """
        cell = self._cell
        spec = as_spec(
            actor, name=name, args=args, kwargs=kwargs, mailbox=mailbox, restart="temporary"
        )
        supervisor = cell if cell.supervisor else cell.parent
        if supervisor is None:
            raise InvalidSpec("the root cannot spawn linked actors; use Runtime.spawn")
        if supervisor.state.value == "stopped":
            raise ActorStopped(supervisor.name)
        ref = await cell.system.start_child(supervisor, spec, False)
        if supervisor is not cell:
            if cell.links is None:
                cell.links = []
            cell.links.append(ref._cell)
        return ref

    def send_after(self, delay: float, body: Message) -> Timer:
        """Send ``body`` to this actor once, ``delay`` seconds from now.

        Raises:
            InvalidMessage: ``body`` is not a frozen, tagged message.
        """
        return self._timer(body, delay, None)

    def send_every(self, interval: float, body: Message, *, first: float | None = None) -> Timer:
        """Send ``body`` to this actor every ``interval`` seconds (first after ``first``).

        Raises:
            InvalidSpec: ``interval`` is not > 0.
            InvalidMessage: ``body`` is not a frozen, tagged message.
        """
        if interval <= 0:
            raise InvalidSpec(f"send_every interval must be > 0, got {interval!r}")
        return self._timer(body, interval if first is None else first, interval)

    def _timer(self, body: object, delay: float, interval: float | None) -> Timer:
        check_message(body)
        cell = self._cell
        timer = Timer(cell, body, max(0.0, delay), interval)
        if cell.timers is None:
            cell.timers = set()
        cell.timers.add(timer)
        return timer

    def watch(self, ref: W) -> W:
        """Get a :class:`Terminated` once ``ref``'s actor stops for good; returns ``ref``.

        One watch, one Terminated, whatever the reason (``Terminated.reason``);
        a restart is not a termination (the same actor, mailbox and ref go
        on). At once, with ``reason="noproc"``, if it is not running. Watching
        it again while watched changes nothing. A :class:`PoolRef` or
        :class:`SupervisorRef` watches the pool or supervisor itself; a
        worker's own ref (``Runtime.ref("pool/0")``) watches that worker; a
        ``RemoteRef`` watches an actor on another node through the node layer
        (see ``greenroom.cluster``). The watch is kept across this actor's
        restarts and ends when it stops. The Terminated comes through this
        actor's mailbox like any message, after what was sent to it before,
        durable when the mailbox is; a full mailbox delays it, never drops
        it, and never blocks this call or the stopping actor.

        Raises:
            UsageError: this actor has no handler for :class:`Terminated`
                (or a base class of it), or ``ref`` cannot be watched.
            ActorStopped: this actor is stopped.
        """
        cell = self._cell
        if Terminated not in cell.dispatch and resolve_handler(cell.dispatch, Terminated) is None:
            raise UsageError(
                f"{cell.name} watches {ref!r} but has no handler for greenroom.Terminated, so "
                f"it could not be told when that actor stops; add one to "
                f"{self.actor_type.__qualname__}: "
                f"`@greenroom.handler async def on_terminated(self, msg: greenroom.Terminated)`"
            )
        if cell.mailbox.closed:
            raise ActorStopped(cell.name)
        _check_watchable(ref, "watch")
        if isinstance(ref, ActorRef):
            target = ref._cell  # the actor of that name now: ref's cell or a later incarnation
            watch_cell(
                cell, cell.system.cells.get(ref.name) if target.stopped else target, ref.name
            )
        else:
            watch_remote(cell, ref)
        return ref

    def unwatch(self, ref: ActorRef | Watchable) -> None:
        """Stop watching ``ref``: a :class:`Terminated` not sent yet will not be.

        One sent already (the actor stopped before this call) may still be
        in the mailbox, as after Erlang's ``demonitor`` without ``flush``.
        Unwatching an actor not watched does nothing.

        Raises:
            UsageError: ``ref`` is neither an ActorRef nor a RemoteRef.
        """
        _check_watchable(ref, "unwatch")
        unwatch(self._cell, ref.name, remote=not isinstance(ref, ActorRef))

    def stop(self) -> None:
        """Stop this actor normally once the current handler returns.

        Its supervisor then restarts it only if it is ``permanent``.
        """
        self._cell.request_exit()


def _take_ask(envelope: Envelope) -> None:
    """The handler of ``envelope`` no longer answers its ask: it went elsewhere."""
    envelope.reply = None
    envelope.correlation_id = None
    envelope.reply_to = None


def _check_watchable(ref: object, what: str) -> None:
    if not isinstance(ref, ActorRef) and not callable(getattr(ref, "_gr_watch", None)):
        raise UsageError(f"ctx.{what} takes an ActorRef or a RemoteRef, got {ref!r}")
