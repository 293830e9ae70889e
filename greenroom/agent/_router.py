"""Router: a coordinator's address, an ordinary actor that forwards each message to its worker.

It routes by the message's type to one of the coordinator's pools (a
subclass of a routed type goes where its nearest routed base goes), and
hands the message on with ``ctx.forward``: the worker's answer, or its
failure, goes straight back to whoever asked the router. In a
:class:`~greenroom.agent.KeyedPool` it also picks, starts and passivates the
worker of the message's key (see :mod:`greenroom.agent._keyed`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

import greenroom as gr
from greenroom.agent._keyed import KeyedPool, KeyedWorkers
from greenroom.agent._messages import Passivated

if TYPE_CHECKING:
    from greenroom.agent._coordinator import Coordinator

__all__ = ["Router", "routing_class"]


class _Sweep(gr.Message, frozen=True):
    """To the router itself: time to look for idle keys."""


class Router(gr.Actor):
    """Routes a coordinator's messages to its pools with ``ctx.forward``; ask it like any actor.

    A :class:`~greenroom.agent.Coordinator` starts it as its last child,
    ``<coordinator>/router``, with a handler for exactly the routed types
    (anything else is refused with :class:`~greenroom.UnknownMessage`).
    Subclass it and pass ``Coordinator(router=...)`` to route differently:
    override :meth:`route`.

    Guarantees: messages of one key reach its worker in the order the
    router got them, through passivations too (held, then forwarded to
    the next worker of the key). A message the router cannot deliver
    (its worker failed to start, a full fail-fast mailbox) fails its ask
    with that error; the router goes on. If the router stops, every ask it
    holds fails with :class:`~greenroom.ActorStopped`. If it restarts, it
    adopts the keyed workers still running.
    """

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self.pools: dict[str, gr.ActorRef | KeyedWorkers] = {}
        self._by_type: dict[type, gr.ActorRef | KeyedWorkers] = {}
        self._sweeper: gr.Timer | None = None
        sweeps = [
            min(max(p.passivate_after / 4, 0.01), 1.0)
            for p in coordinator.pools
            if isinstance(p, KeyedPool) and p.passivate_after is not None
        ]
        self._sweep_every = min(sweeps, default=None)

    async def on_start(self) -> None:
        parent = self.ctx.parent
        if parent is None:
            raise gr.InvalidSpec("a Router runs under its Coordinator's supervisor, not the root")
        for pool in self.coordinator.pools:
            ref = self.ctx.runtime.ref(f"{parent.name}/{pool.id}")
            if isinstance(pool, KeyedPool):
                self.pools[pool.id] = KeyedWorkers(pool, cast(gr.SupervisorRef, ref), self.ctx)
            else:
                self.pools[pool.id] = ref

    async def on_stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        name = self.ctx.name
        for target in self.pools.values():
            if isinstance(target, KeyedWorkers):
                target.fail_held(lambda body: gr.ActorStopped(name, type(body).__qualname__))

    async def route(self, msg: gr.Message) -> None:
        """Forward ``msg`` (the message being handled) to its pool, or its key's worker."""
        kind = type(msg)
        target = self._by_type.get(kind)
        if target is None:
            pool = self.coordinator.pool_of(kind)
            assert pool is not None  # the handler takes routed types only
            target = self._by_type[kind] = self.pools[pool]
        if isinstance(target, KeyedWorkers):
            await target.deliver(msg)
            if self._sweeper is None and self._sweep_every is not None and len(target):
                self._sweeper = self.ctx.send_every(self._sweep_every, _Sweep())
            return
        try:
            await self.ctx.forward(target)
        except gr.GreenroomError as exc:
            self.ctx.defer().fail(exc)

    @gr.handler
    async def sweep(self, msg: _Sweep) -> None:
        """Passivate the keys idle long enough; stop sweeping once no key is active."""
        now = time.monotonic()
        keyed = [t for t in self.pools.values() if isinstance(t, KeyedWorkers)]
        for target in keyed:
            await target.sweep(now)
        if self._sweeper is not None and not any(len(t) for t in keyed):
            self._sweeper.cancel()
            self._sweeper = None

    @gr.handler
    async def passivated(self, msg: Passivated) -> None:
        """A keyed worker answered ``Passivate``."""
        target = self.pools.get(msg.pool)
        if isinstance(target, KeyedWorkers):
            await target.passivated(msg)


def routing_class(base: type[Router], routed: tuple[type[gr.Message], ...]) -> type[Router]:
    """A subclass of ``base`` whose dispatch table takes exactly ``routed`` to :meth:`Router.route`.

    Dispatch tables belong to classes, and the routed types are data of
    each coordinator: so each coordinator gets its own class, made once.
    """

    async def handle_routed(self: Router, msg: gr.Message) -> None:
        await self.route(msg)

    namespace = {
        "handle_routed": gr.handler(*routed)(handle_routed),
        "__module__": base.__module__,
        "__qualname__": base.__qualname__,
        "__doc__": base.__doc__,
    }
    return cast(type[Router], type(base.__name__, (base,), namespace))
