"""Keyed pools: one worker per key, started on the key's first message, passivated when idle.

A :class:`KeyedPool` is a supervisor (one-for-one) that starts empty; the
coordinator's router starts a worker under it the first time a key is seen,
names it ``<pool>/<key>``, and forwards it every message of that key, so a
conversation keeps one worker and its order. A key whose worker had nothing
for ``passivate_after`` seconds is passivated (see
:class:`~greenroom.agent.Entity` for the exchange): its worker stops, and its
next message starts a new one, which reads its state from the store. Only
the active keys are in memory.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import msgspec

import greenroom as gr
from greenroom.actors import Deferred
from greenroom.agent._entity import Entity
from greenroom.agent._messages import Passivate, Passivated

__all__ = ["KeyedPool", "KeyedWorkers", "conversation_workers"]


class KeyedPool(msgspec.Struct, frozen=True, kw_only=True):
    """One worker per key, started on the key's first message and stopped when idle.

    Attributes:
        id: the pool's id among the coordinator's children (no ``/``).
        worker: the spec each worker starts from; its ``id`` is replaced by
            the key (quoted: ``/`` becomes ``%2F``) and its restart type by
            ``"transient"`` (restarted after a failure, not after it stopped).
        key: the attribute of every routed message that names its key
            (default ``"conversation"``).
        passivate_after: seconds without a message after which a key's
            worker is passivated (default 60.0; ``None``: never). Its worker
            must then be an :class:`~greenroom.agent.Entity`.
        max_restarts, within: the pool supervisor's restart intensity
            (default 10 restarts within 10.0 s).
    """

    id: str
    worker: gr.ChildSpec
    key: str = "conversation"
    passivate_after: float | None = 60.0
    max_restarts: int = 10
    within: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id or "/" in self.id:
            raise gr.InvalidSpec(
                f"KeyedPool.id must be a non-empty str without '/', got {self.id!r}"
            )
        if not isinstance(self.worker, gr.ChildSpec):
            raise gr.InvalidSpec(f"KeyedPool.worker must be a ChildSpec, got {self.worker!r}")
        if not isinstance(self.key, str) or not self.key.isidentifier():
            raise gr.InvalidSpec(f"KeyedPool.key must be an attribute name, got {self.key!r}")
        after = self.passivate_after
        if after is not None:
            if not after >= 0:
                raise gr.InvalidSpec(
                    f"KeyedPool.passivate_after must be seconds >= 0 or None, got {after!r}"
                )
            if not issubclass(self.worker.actor, Entity):
                raise gr.InvalidSpec(
                    f"KeyedPool {self.id!r} passivates its workers, but "
                    f"{self.worker.actor.__qualname__} is not an Entity; subclass "
                    "greenroom.agent.Entity (Worker is one) or pass passivate_after=None"
                )
        self.spec()  # validates max_restarts and within

    def spec(self) -> gr.SupervisorSpec:
        """The pool's supervisor: one-for-one, no children until keys are seen."""
        return gr.SupervisorSpec(
            id=self.id, strategy="one_for_one", max_restarts=self.max_restarts, within=self.within
        )


def conversation_workers(
    id: str,
    worker: gr.ChildSpec,
    *,
    key: str = "conversation",
    passivate_after: float | None = 60.0,
) -> KeyedPool:
    """A :class:`KeyedPool`: one worker per conversation, passivated when idle that long."""
    return KeyedPool(id=id, worker=worker, key=key, passivate_after=passivate_after)


def child_id(key: str) -> str:
    """The child id of ``key``'s worker: the key, quoted so that it holds no ``/``."""
    return quote(key, safe="") or "%"


class _Entry:
    """One active key: its worker, when it last got a message, and what waits while it stops."""

    __slots__ = ("epoch", "held", "last", "ref")

    def __init__(self, ref: gr.ActorRef) -> None:
        self.ref = ref
        self.last = time.monotonic()
        self.epoch = 0
        self.held: deque[Deferred] | None = None  # not None: passivating, these wait


_epochs = itertools.count(1)

Fail = Callable[[Exception, bool], None]
"""Settles a message that could not be delivered: ``(error, whether a send failed)``."""


class KeyedWorkers:
    """A router's view of one keyed pool: the active keys and their workers.

    Runs in the router's task only (every method is called from one of its
    handlers), so it needs no locks. Internal to :class:`~greenroom.agent.Router`.
    """

    def __init__(self, pool: KeyedPool, supervisor: gr.SupervisorRef, ctx: gr.ActorContext) -> None:
        self.pool = pool
        self.supervisor = supervisor
        self.ctx = ctx
        self.active: OrderedDict[str, _Entry] = OrderedDict()  # least recently sent first

    def __len__(self) -> int:
        return len(self.active)

    async def deliver(self, body: object) -> None:
        """Forward the message being handled to its key's worker (held while it stops)."""
        ctx = self.ctx
        key = str(getattr(body, self.pool.key))
        entry = self.active.get(key)
        if entry is not None and entry.held is not None:
            entry.held.append(ctx.defer())
            return
        await self._send(key, entry, ctx.forward, self._fail_current)

    def _fail_current(self, error: Exception, sent: bool) -> None:
        envelope = self.ctx.envelope
        # A told message whose send failed is a dead letter already; only an asker must hear.
        if not sent or (envelope is not None and envelope.correlation_id is not None):
            self.ctx.defer().fail(error)

    @staticmethod
    def _fail_held(deferred: Deferred) -> Fail:
        def fail(error: Exception, sent: bool) -> None:
            if not sent or deferred.is_ask:
                deferred.fail(error)

        return fail

    async def _send(
        self,
        key: str,
        entry: _Entry | None,
        forward: Callable[[gr.ActorRef], Awaitable[None]],
        fail: Fail,
    ) -> None:
        if entry is not None and not self._registered(entry.ref.name):
            # Its worker is gone without passivation (its pool supervisor restarted).
            del self.active[key]
            entry = None
        if entry is None:
            try:
                entry = await self._start(key)
            except gr.GreenroomError as exc:  # it failed to start: the asker hears why
                fail(exc, False)
                return
        try:
            await forward(entry.ref)
        except gr.GreenroomError as exc:  # a full fail-fast mailbox, or it stopped meanwhile
            fail(exc, True)
            return
        entry.last = time.monotonic()
        self.active.move_to_end(key)

    async def _start(self, key: str) -> _Entry:
        """The worker of ``key``: one left running by an earlier router, or a new one."""
        cid = child_id(key)
        name = f"{self.supervisor.name}/{cid}"
        if self._registered(name):
            ref = self.ctx.runtime.ref(name)  # adopted
        else:
            spec = msgspec.structs.replace(self.pool.worker, id=cid, restart="transient")
            timeout = self.ctx.runtime.config.start_timeout
            try:
                ref = (await self.supervisor.start_child(spec, timeout=timeout)).ref
            except gr.InvalidSpec:
                # The stopped record of an earlier worker of this key is in the way.
                await self.supervisor.delete_child(cid)
                ref = (await self.supervisor.start_child(spec, timeout=timeout)).ref
        entry = self.active[key] = _Entry(ref)
        return entry

    def _registered(self, name: str) -> bool:
        try:
            self.ctx.runtime.ref(name)
        except gr.ActorStopped:
            return False
        return True

    async def sweep(self, now: float) -> None:
        """Passivate the keys idle for ``passivate_after``; settle those whose worker vanished."""
        after = self.pool.passivate_after
        if after is None:
            return
        for key, entry in list(self.active.items()):
            if entry.held is not None:
                if not self._registered(entry.ref.name):  # stopped without a word
                    await self._gone(key, entry)
                continue
            if now - entry.last < after:
                break  # least recently sent first: every key after this one is busier
            await self._passivate(key, entry)

    async def _passivate(self, key: str, entry: _Entry) -> None:
        entry.epoch = next(_epochs)
        entry.held = deque()
        ask = Passivate(pool=self.pool.id, key=key, epoch=entry.epoch, router=self.ctx.name)
        try:
            entry.ref.tell_nowait(ask)  # never wait: a worker with a backlog is not idle
        except gr.ActorStopped:
            await self._gone(key, entry)
        except gr.GreenroomError:  # its mailbox is full: try again later
            await self._resume(key, entry)

    async def passivated(self, msg: Passivated) -> None:
        """The worker of ``msg.key`` answered: forget it, or take it up again."""
        entry = self.active.get(msg.key)
        if entry is None or entry.held is None or entry.epoch != msg.epoch:
            return  # an answer to an earlier exchange
        if msg.stopped:
            await self._gone(msg.key, entry)
        else:
            await self._resume(msg.key, entry)

    async def _resume(self, key: str, entry: _Entry) -> None:
        held, entry.held = entry.held or deque(), None
        entry.last = time.monotonic()
        self.active.move_to_end(key)
        await self._release(key, entry, held)

    async def _gone(self, key: str, entry: _Entry) -> None:
        """The worker of ``key`` stopped: forget it; a new one takes what was held."""
        del self.active[key]
        with contextlib.suppress(gr.InvalidSpec, gr.ActorStopped):  # forgotten already
            await self.supervisor.delete_child(child_id(key))
        held = entry.held
        if held:
            await self._release(key, None, held)

    async def _release(self, key: str, entry: _Entry | None, held: deque[Deferred]) -> None:
        for deferred in held:
            await self._send(key, entry, deferred.forward, self._fail_held(deferred))
            entry = self.active.get(key)

    def fail_held(self, error: Callable[[object], Exception]) -> None:
        """Fail every held ask (the router is stopping); ``error`` makes the error for a body."""
        for entry in self.active.values():
            held, entry.held = entry.held, None
            for deferred in held or ():
                if not deferred.settled:
                    deferred.fail(error(deferred.body))
