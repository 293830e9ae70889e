"""Entity: an actor started per key by a coordinator and passivated when idle.

The exchange, as a keyed pool of a :class:`~greenroom.agent.Coordinator`
runs it::

    router ── forward ──▶ worker of key K    (messages of K, in order)
    router: K idle for passivate_after s
    router ── Passivate(K, epoch) ──▶ worker    (after every forward: a barrier)
       ... the router holds K's next messages (ctx.defer), in order ...
    worker: nothing queued, may_passivate()?  ── ctx.stop()
    worker ── Passivated(K, epoch, stopped) ──▶ router
    router: stopped → forget the worker; if it held messages, start a new
            worker of K (its state comes from the store) and forward them;
            not stopped → forward them to the same worker.

Only the router sends a keyed worker its messages, so when the worker
handles ``Passivate`` every earlier message has been handled, and nothing
new arrives while the router holds: stopping loses nothing.
"""

from __future__ import annotations

import contextlib

import greenroom as gr
from greenroom.agent._messages import Passivate, Passivated

__all__ = ["Entity"]


class Entity(gr.Actor):
    """An actor that a coordinator may stop when its key is idle, and start again later.

    Subclass it for a keyed pool's worker (:class:`~greenroom.agent.Worker`
    is one). Keep whatever must outlive the instance in the store: a new
    instance starts fresh. Override :meth:`may_passivate` to refuse while
    something only this instance knows is pending.
    """

    @gr.handler
    async def passivate(self, msg: Passivate) -> None:
        """The router found this worker idle: stop, unless a message waits or it may not."""
        stop = False
        if self.ctx.queued == 0:
            try:
                stop = await self.may_passivate()
            except Exception as exc:  # a refusal, not a failure: the router asks again later
                self.ctx.log.bind(event="agent.may_passivate_failed").opt(exception=exc).warning(
                    "{actor}: may_passivate raised {error!r}; not passivated",
                    actor=self.ctx.name,
                    error=exc,
                )
        if stop:
            self.ctx.stop()
        answer = Passivated(pool=msg.pool, key=msg.key, epoch=msg.epoch, stopped=stop)
        with contextlib.suppress(gr.GreenroomError):  # the router is gone: nobody to tell
            await self.ctx.runtime.ref(msg.router).tell(answer)

    async def may_passivate(self) -> bool:
        """Whether this instance may stop now (default ``True``); runs in its own handler."""
        return True
