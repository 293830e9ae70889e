"""The system: the one internal interface between the runtime and its parts.

A :class:`System` is what cells, refs, contexts, supervisors and pools see of
their runtime (``Runtime`` owns one; users never see it): the shared state
(loop, names, tasks, dead letters, tracer) and the message-path steps that are
no one cell's own (make an envelope, the slow send, replies, dead letters).
Nothing reaches into :class:`~greenroom.Runtime`.

Besides ``System``, these underscore names are all one actors module uses of
another (``tests/test_layering.py`` checks that no other crosses a module);
on public classes they stay out of the public API.

- ``_cell``: a ref's or a context's cell (``ActorRef._cell``,
  ``ActorContext._cell``);
- ``_target``: the cell a ref sends a body to (a pool's ref routes it);
- ``_child_failed``, ``_child_exited``: the reports a cell posts to its
  supervisor's task (``Supervisor``);
- ``_gr_cell``, ``_gr_kill``: the runtime's hooks on an actor instance (its
  cell; its stop ran out of time);
- ``_gr_spec``: the spec a plain spawn of a class shares, cached on it;
- ``_gr_watch``: the hook a remote ref offers for death watch
  (``greenroom.cluster``).
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from greenroom._errors import (
    ActorStopped,
    ErrorInfo,
    InvalidMessage,
    MailboxClosed,
    MailboxFull,
    MessageTooLarge,
    UnknownMessage,
)
from greenroom.actors._config import RuntimeConfig
from greenroom.actors._deadlines import Deadlines
from greenroom.mailbox import (
    DeadLetter,
    DeadLetterReason,
    DeadLetterSink,
    Envelope,
    IdempotencyKey,
    MailboxFactory,
    check_message,
    fixed_size,
    make_envelope,
)
from greenroom.trace import Tracer, current_span, format_id, new_id
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors._cell import Cell
    from greenroom.actors._extension import Extension
    from greenroom.actors._ref import ActorRef
    from greenroom.actors._runtime import Runtime
    from greenroom.actors._spec import Spec

__all__ = ["RemoteReplies", "System"]

RemoteReplies = Callable[[Envelope, object, BaseException | None], None]
"""Where a runtime sends the replies of asks made in another process."""

_encoder = msgspec.msgpack.Encoder()
_time = time.time
_get_span = current_span.get


class System:
    """The runtime's shared state and message-path steps, as its parts use them.

    Attributes (those not plain from their names):
        node: this runtime's address in ``Envelope.reply_to``.
        cells: running cells by name.
        idle: paused cells and the sweep they paused in (a cell busy again
            is dropped by the sweep: the hot path makes one store).
        intake_open: whether messages from outside any actor are taken.
    """

    def __init__(
        self,
        runtime: Runtime,
        config: RuntimeConfig,
        *,
        dead_letters: DeadLetterSink,
        extensions: Sequence[Extension],
        mailboxes: Mapping[str, MailboxFactory],
        tracer: Tracer | None,
    ) -> None:
        self.runtime = runtime
        self.config = config
        self.tracer = tracer
        self.extensions: tuple[Extension, ...] = tuple(extensions)
        self.mailboxes: dict[str, MailboxFactory] = dict(mailboxes)
        self.dead_letters = dead_letters
        self.node = f"node-{id(runtime):x}"
        self.cells: dict[str, Cell] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.idle: dict[Cell, int] = {}
        self.sweeps = 0
        self.intake_open = True
        self.late_replies = 0
        self.dead_letter_total = 0
        self.remote_replies: RemoteReplies | None = None
        self.ask_timeout = config.ask_timeout
        self._max_bytes = config.max_message_bytes
        self._encode = config.encode_messages
        self._free: set[type] = set()  # message types whose bodies always pass the send check
        # Envelope ids: a random 62-bit base and a counter, as trace.new_id, minus a call.
        self.next_id: Callable[[], int] = itertools.count(secrets.randbits(62) | 1).__next__
        self.loop: asyncio.AbstractEventLoop
        self.deadlines: Deadlines  # the one timeout mechanism (set with the loop)
        # Set by the runtime: the steps that need the classes above this module.
        self.start_child: Callable[[Cell, Spec, bool], Awaitable[ActorRef]]
        self.make_cell: Callable[[Cell, Spec, str, bool], Cell]
        self.start_cell: Callable[[Cell], Awaitable[bool]]
        self.call_supervisor: Callable[
            [Cell, Callable[[Any], Awaitable[Any]], float], Awaitable[Any]
        ]
        self.stop_linked: Callable[[Cell], Awaitable[None]]
        self.root_failed: Callable[[BaseException | None], None]

    # -- tasks and names ----------------------------------------------------

    def start_task(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a task the runtime owns: cancelled and awaited on exit, its crash logged."""
        task = self.loop.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            logger.bind(event="internal_error").opt(exception=error).error(
                "greenroom internal error in {task}", task=task.get_name()
            )
            self.root_failed(error)

    def unregister(self, cell: Cell) -> None:
        """Forget ``cell``'s name, unless another cell holds it by now."""
        if self.cells.get(cell.name) is cell:
            del self.cells[cell.name]

    # -- sending ------------------------------------------------------------

    def envelope(
        self,
        cell: Cell,
        body: object,
        key: IdempotencyKey | None = None,
        timeout: float | None = None,
    ) -> Envelope:
        """Check ``body`` and wrap it for ``cell``; an ask's when ``timeout`` is given.

        ``make_envelope`` (joining the current span's trace), inlined for the
        common cases: every send pays for it.

        Raises (each also a dead letter): InvalidMessage, MessageTooLarge,
        MailboxClosed (the runtime is draining and the sender is outside any
        actor), UsageError (a bad ``key``).
        """
        if type(body) not in self._free:
            body = self._check(cell, body)
        parent = _get_span()
        if parent is None:
            if not self.intake_open:
                closed = MailboxClosed(cell.name)
                self.refuse(cell, body, "actor_stopped", closed)
                raise closed
            if key is None:
                msg_id = self.next_id()
                if timeout is None:
                    return Envelope(
                        id=msg_id,
                        recipient=cell.name,
                        body=body,
                        trace_id=msg_id,
                        created_at=_time(),
                    )
                now = _time()
                return Envelope(
                    id=msg_id,
                    recipient=cell.name,
                    body=body,
                    reply_to=self.node,
                    correlation_id=msg_id,
                    trace_id=msg_id,
                    created_at=now,
                    deadline=now + timeout,
                )
        if timeout is None:
            return make_envelope(cell.name, body, key=key)
        envelope = make_envelope(cell.name, body, reply_to=self.node, key=key)
        envelope.correlation_id = envelope.id
        envelope.deadline = envelope.created_at + timeout
        return envelope

    def _check(self, cell: Cell, body: object) -> object:
        try:
            bound = check_message(body)
        except InvalidMessage as exc:
            self.refuse(cell, body, "invalid_message", exc)
            raise
        limit = self._max_bytes
        if self._encode or (limit is not None and (bound is None or bound > limit)):
            return self._check_encoding(cell, body)
        if limit is None or fixed_size(body):
            self._free.add(type(body))  # every body of the type passes: no check again
        return body

    def _check_encoding(self, cell: Cell, body: object) -> object:
        try:
            data = _encoder.encode(body)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            error = InvalidMessage(type(body).__qualname__, f"it cannot be encoded: {exc}")
            self.refuse(cell, body, "invalid_message", error)
            raise error from exc
        limit = self._max_bytes
        if limit is not None and len(data) > limit:
            too_large = MessageTooLarge(type(body).__qualname__, len(data), limit)
            self.refuse(cell, body, "too_large", too_large)
            raise too_large
        if self._encode:
            return msgspec.msgpack.decode(data, type=type(body))
        return body

    def refuse(self, cell: Cell, body: object, reason: DeadLetterReason, error: Exception) -> None:
        """A send refused before it had an envelope: dead-letter it with ``error``."""
        self.dead_letter(make_envelope(cell.name, body), cell.name, reason, error)

    async def put(self, cell: Cell, envelope: Envelope, until: asyncio.Future[Any] | None) -> None:
        """The slow path of a send: the mailbox is full, or durable (wait for the commit).

        Waits for room per the overflow setting, bounded by ``until`` (an
        ask's reply future, failed at its deadline) when given.

        Raises:
            MailboxFull: full, and the overflow is ``"fail"``.
            ActorStopped: the mailbox is closed (also a dead letter).
            AskTimeout: ``until`` failed (the ask timed out) while waiting.
            MailboxUnavailable, InvalidMessage, MessageTooLarge: a durable
                mailbox could not take the message.
        """
        mailbox = cell.mailbox
        if cell.overflow_fail and (not cell.durable or len(mailbox) >= mailbox.capacity):
            full = MailboxFull(cell.name, mailbox.capacity)
            self.dead_letter(envelope, cell.name, "mailbox_full", full)
            raise full
        try:
            if until is None:
                await mailbox.put(envelope)
                return
            putting = asyncio.ensure_future(mailbox.put(envelope))
            try:
                await asyncio.wait((putting, until), return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not putting.done():
                    putting.cancel()
                    await asyncio.wait((putting,))
            if not putting.cancelled():
                putting.result()  # raises what the put raised
            elif until.done():
                until.result()  # raises the ask's AskTimeout
        except MailboxClosed as exc:
            raise self.closed(cell, envelope, exc) from None

    def put_nowait(self, cell: Cell, envelope: Envelope) -> None:
        """Send without waiting.

        Raises:
            MailboxFull: no room (also a dead letter).
            ActorStopped: the mailbox is closed (also a dead letter).
        """
        mailbox = cell.mailbox
        try:
            if mailbox.offer(envelope):
                return
        except MailboxClosed as exc:
            raise self.closed(cell, envelope, exc) from None
        full = MailboxFull(cell.name, mailbox.capacity)
        self.dead_letter(envelope, cell.name, "mailbox_full", full)
        raise full

    def closed(self, cell: Cell, envelope: Envelope, exc: Exception) -> ActorStopped:
        """The send found ``cell``'s mailbox closed: dead-letter it; the error to raise."""
        stopped = ActorStopped(cell.name, type(envelope.body).__qualname__)
        self.dead_letter(envelope, cell.name, "actor_stopped", stopped)
        return stopped

    # -- replies ------------------------------------------------------------

    def reply(self, envelope: Envelope, result: object) -> None:
        """Answer the ask ``envelope`` carries: its future, or the remote-reply sink.

        A reply nobody waits for any more is dropped and counted in ``late_replies``.
        """
        future = envelope.reply
        if future is not None:
            if future.done():
                self.late_replies += 1
            else:
                future.set_result(result)
        elif envelope.correlation_id is not None:
            self._remote(envelope, result, None)

    def fail_ask(self, envelope: Envelope, error: BaseException) -> None:
        """Fail the ask ``envelope`` carries with ``error`` (as :meth:`reply` routes)."""
        future = envelope.reply
        if future is not None:
            if future.done():
                self.late_replies += 1
            else:
                future.set_exception(error)
        elif envelope.correlation_id is not None:
            self._remote(envelope, None, error)

    def _remote(self, envelope: Envelope, result: object, error: BaseException | None) -> None:
        sink = self.remote_replies
        if sink is not None and envelope.reply_to not in (None, self.node):
            sink(envelope, result, error)
        else:
            self.late_replies += 1

    def unknown_message(self, cell: Cell, envelope: Envelope) -> None:
        """``cell`` has no handler for the body: ack, dead-letter, fail the ask."""
        cell.mailbox.ack(envelope)
        accepted = tuple(sorted(t.__qualname__ for t in cell.dispatch))
        error = UnknownMessage(cell.name, type(envelope.body).__qualname__, accepted)
        self.dead_letter(envelope, cell.name, "unknown_message", error)
        self.fail_ask(envelope, error)

    def undeliverable(self, cell: Cell, envelope: Envelope) -> None:
        """``cell`` stopped with ``envelope`` in hand or queued: dead-letter it, fail its ask.

        A durable message stays on disk, unacked, for the next incarnation:
        only its ask fails.
        """
        error = ActorStopped(cell.name, type(envelope.body).__qualname__)
        if not cell.durable:
            self.dead_letter(envelope, cell.name, "actor_stopped", error)
        self.fail_ask(envelope, error)

    # -- what happened ------------------------------------------------------

    def trace_event(
        self,
        kind: str,
        name: str,
        actor: str,
        where: Envelope | tuple[int, int] | None,
        attributes: dict[str, object],
        error: ErrorInfo | None = None,
    ) -> None:
        """Record an instant span (a supervisor action, a dead letter).

        ``where`` is its parent: a delivery (its current attempt's span),
        ``(trace_id, span_id)``, or ``None`` (a new trace). A retry or restart
        is an ``ok`` span naming its cause; others with ``error`` fail.
        """
        tracer = self.tracer
        if tracer is None:
            return
        now = _time()
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

    def dead_letter(
        self,
        envelope: Envelope,
        actor: str,
        reason: DeadLetterReason,
        error: ErrorInfo | BaseException,
    ) -> None:
        """Record ``envelope`` as a dead letter for ``actor``: sink, trace span and log line."""
        info = error if isinstance(error, ErrorInfo) else ErrorInfo.from_exception(error)
        if envelope.reply is not None:  # a live future is not data: letters are kept and sent
            envelope = msgspec.structs.replace(envelope, reply=None)
        self.trace_event(
            "supervisor",
            "dead_letter",
            actor,
            envelope,
            {"greenroom.reason": reason, "greenroom.attempt": envelope.attempt},
            info,
        )
        self.dead_letter_total += 1
        self.dead_letters.add(DeadLetter(envelope=envelope, actor=actor, reason=reason, error=info))
        logger.bind(
            actor=actor, event="dead_letter", reason=reason, trace_id=format_id(envelope.trace_id)
        ).warning(
            "dead letter for {actor}: {reason}: {error}",
            actor=actor,
            reason=reason,
            error=f"{info.type}: {info.message}",
        )
