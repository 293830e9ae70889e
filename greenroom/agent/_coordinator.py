"""Coordinator: the supervisor of an agent, routing requests by type and by conversation.

::

    desk = Coordinator(
        "desk",
        routes={Request: "support", Resolve: "support"},     # message type -> pool
        pools=[PoolSpec(id="support", size=4, routing="consistent_hash", key="conversation",
                        worker=ChildSpec(actor=DeskWorker, kwargs=...))],
        children=(ChildSpec(actor=Profiles, id="profiles"),),
    )
    ref = await desk.start(rt)                     # or put desk.spec() in a bigger tree
    answer = await ref.ask(Request(conversation="c-1", text="where is my order?"))

:meth:`Coordinator.spec` is an ordinary :class:`~greenroom.SupervisorSpec`
(one-for-one): the pools and the other children, supervised, restarted and
stopped like any subtree. :class:`CoordinatorRef` routes in the caller's
task, with no extra hop: the message's type picks the pool, the pool's
consistent hash of the conversation picks the worker, so one conversation
keeps one worker and its messages keep their order. The worker's answer is
the reply to ``ask``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import greenroom as gr
from greenroom.actors import Spec

__all__ = ["Coordinator", "CoordinatorRef", "conversation_pool"]


def conversation_pool(
    id: str, worker: gr.ChildSpec, *, size: int = 4, key: str = "conversation"
) -> gr.PoolSpec:
    """A pool of ``size`` workers routed by consistent hash of the message's ``key`` attribute."""
    return gr.PoolSpec(id=id, worker=worker, size=size, routing="consistent_hash", key=key)


class Coordinator:
    """Builds an agent's supervisor spec, and routes to its pools.

    Args:
        id: the supervisor's id (its name under the root).
        routes: which pool (by id) handles each message type; a subclass of
            a routed type goes where its nearest routed base goes.
        pools: the worker pools.
        children: other actors of the agent, started before the pools.
        max_restarts, within: the supervisor's restart intensity.

    Raises:
        InvalidSpec: a route names no pool, or the specs are invalid.
    """

    def __init__(
        self,
        id: str,
        *,
        routes: Mapping[type[gr.Message], str],
        pools: Sequence[gr.PoolSpec],
        children: Sequence[Spec] = (),
        max_restarts: int = 10,
        within: float = 10.0,
    ) -> None:
        ids = {p.id for p in pools}
        for message_type, pool in routes.items():
            if pool not in ids:
                raise gr.InvalidSpec(
                    f"Coordinator {id!r} routes {message_type.__qualname__} to pool {pool!r}, "
                    f"but its pools are {sorted(ids)}"
                )
        self.id = id
        self.routes = dict(routes)
        self.pools = tuple(pools)
        self.children = tuple(children)
        self._spec = gr.SupervisorSpec(
            id=id,
            children=(*self.children, *self.pools),
            strategy="one_for_one",
            max_restarts=max_restarts,
            within=within,
        )

    def spec(self) -> gr.SupervisorSpec:
        """The supervisor spec: ``children`` in order, then the pools."""
        return self._spec

    async def start(self, runtime: gr.Runtime) -> CoordinatorRef:
        """Spawn :meth:`spec` under the runtime's root; a ref that routes to it.

        Raises:
            as ``Runtime.spawn``.
        """
        supervisor = await runtime.spawn(self._spec)
        return CoordinatorRef(self, runtime, supervisor.name)

    def ref(self, runtime: gr.Runtime, name: str | None = None) -> CoordinatorRef:
        """A ref to the running coordinator called ``name`` (default: its id, under the root)."""
        return CoordinatorRef(self, runtime, name or self.id)


class CoordinatorRef:
    """Routes messages to a running coordinator's pools; ``tell`` and ``ask`` like an ActorRef."""

    __slots__ = ("_by_type", "_pools", "_runtime", "coordinator", "name")

    def __init__(self, coordinator: Coordinator, runtime: gr.Runtime, name: str) -> None:
        self.coordinator = coordinator
        self.name = name
        self._runtime = runtime
        self._pools: dict[str, gr.ActorRef] = {}
        self._by_type: dict[type, str] = {}

    def __repr__(self) -> str:
        return f"CoordinatorRef({self.name!r})"

    def pool(self, body: object) -> gr.ActorRef:
        """The pool ``body`` is routed to, by its type.

        Raises:
            UnknownMessage: no route takes ``type(body)``.
            ActorStopped: the pool is not running.
        """
        kind = type(body)
        pool_id = self._by_type.get(kind)
        if pool_id is None:
            routes = self.coordinator.routes
            pool_id = next((routes[t] for t in kind.__mro__ if t in routes), None)
            if pool_id is None:
                accepted = tuple(t.__qualname__ for t in routes)
                raise gr.UnknownMessage(self.name, kind.__qualname__, accepted)
            self._by_type[kind] = pool_id
        ref = self._pools.get(pool_id)
        if ref is None:
            ref = self._pools[pool_id] = self._runtime.ref(f"{self.name}/{pool_id}")
        return ref

    async def tell(self, body: gr.Message) -> None:
        """Send ``body`` to the worker of its conversation; as ``ActorRef.tell``."""
        await self.pool(body).tell(body)

    async def ask(self, body: gr.Message, *, timeout: float | None = None) -> object:
        """Send ``body`` to the worker of its conversation and wait for the answer.

        Raises:
            UnknownMessage: no route takes ``type(body)``.
            AskTimeout, HandlerError, ActorStopped, MailboxFull: as ``ActorRef.ask``.
        """
        return await self.pool(body).ask(body, timeout=timeout)
