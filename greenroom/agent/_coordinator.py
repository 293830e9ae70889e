"""Coordinator: the supervisor of an agent, and its router, which forwards by type and by key.

::

    desk = Coordinator(
        "desk",
        routes={Request: "support", Resolve: "support"},     # message type -> pool
        pools=[conversation_workers("support", ChildSpec(actor=DeskWorker, kwargs=...))],
        children=(ChildSpec(actor=Profiles, id="profiles"),),
    )
    ref = await desk.start(rt)        # the router's ActorRef, "desk/router"
    answer = await ref.ask(Request(conversation="c-1", text="where is my order?"))

(or put ``desk.spec()`` in a bigger tree and ask ``desk.ref(rt, name)``).

:meth:`Coordinator.spec` is an ordinary one-for-one
:class:`~greenroom.SupervisorSpec`: the other children first, then the pools,
then the :class:`~greenroom.agent.Router`. The router is the coordinator's
address: any actor or outside caller asks it, it forwards the message to
the worker its type and key pick, and that worker's answer (or failure) is
the reply. Two kinds of pool:

* :func:`conversation_workers` (a :class:`~greenroom.agent.KeyedPool`): one
  worker per conversation, started on its first message and passivated when
  idle; its next message starts a new one that reads its state from the store.
* :func:`conversation_pool` (a :class:`~greenroom.PoolSpec`): a fixed number
  of workers, a conversation picked by consistent hash of its key; it bounds
  how many turns run at once, and keeps every worker in memory.

Either way one conversation keeps one worker and its messages their order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

import greenroom as gr
from greenroom.actors import Spec
from greenroom.agent._keyed import KeyedPool
from greenroom.agent._router import Router, routing_class

__all__ = ["Coordinator", "conversation_pool"]

ROUTER_ID = "router"


def conversation_pool(
    id: str, worker: gr.ChildSpec, *, size: int = 4, key: str = "conversation"
) -> gr.PoolSpec:
    """A pool of ``size`` workers routed by consistent hash of the message's ``key`` attribute."""
    return gr.PoolSpec(id=id, worker=worker, size=size, routing="consistent_hash", key=key)


class Coordinator:
    """Builds an agent's supervisor spec: its children, its pools and the router in front.

    Args:
        id: the supervisor's id (its name under the root).
        routes: which pool (by id) handles each message type; a subclass of
            a routed type goes where its nearest routed base goes.
        pools: keyed pools (:func:`conversation_workers`) and pools
            (:func:`conversation_pool`, or any :class:`~greenroom.PoolSpec`).
        children: other actors of the agent, started before the pools.
        router: the router class (default :class:`~greenroom.agent.Router`).
        max_restarts, within: the supervisor's restart intensity.

    Raises:
        InvalidSpec: a route names no pool or a type that is not a Message,
            a routed type lacks its pool's key attribute, two children share
            an id (``"router"`` is taken), or the specs are invalid.
    """

    def __init__(
        self,
        id: str,
        *,
        routes: Mapping[type[gr.Message], str],
        pools: Sequence[gr.PoolSpec | KeyedPool],
        children: Sequence[Spec] = (),
        router: type[Router] = Router,
        max_restarts: int = 10,
        within: float = 10.0,
    ) -> None:
        by_id = {p.id: p for p in pools}
        ids = [s.child_id for s in children] + [p.id for p in pools] + [ROUTER_ID]
        if len(set(ids)) != len(ids):
            raise gr.InvalidSpec(
                f"Coordinator {id!r} has children {ids}; ids must be distinct, and "
                f"{ROUTER_ID!r} is its router's"
            )
        for message_type, pool_id in routes.items():
            _check_route(id, message_type, pool_id, by_id)
        if not (isinstance(router, type) and issubclass(router, Router)):
            raise gr.InvalidSpec(f"Coordinator router must be a Router subclass, got {router!r}")
        self.id = id
        self.routes = dict(routes)
        self.pools = tuple(pools)
        self.children = tuple(children)
        self.router = routing_class(router, tuple(self.routes))
        router_spec = gr.ChildSpec(actor=self.router, id=ROUTER_ID, kwargs={"coordinator": self})
        pool_specs = [p.spec() if isinstance(p, KeyedPool) else p for p in self.pools]
        self._spec = gr.SupervisorSpec(
            id=id,
            children=(*self.children, *pool_specs, router_spec),
            strategy="one_for_one",
            max_restarts=max_restarts,
            within=within,
        )
        self._pool_of: dict[type, str | None] = {}

    def spec(self) -> gr.SupervisorSpec:
        """The supervisor spec: ``children`` in order, then the pools, then the router."""
        return self._spec

    def pool_of(self, message_type: type) -> str | None:
        """The id of the pool ``message_type`` is routed to (by its nearest routed base)."""
        try:
            return self._pool_of[message_type]
        except KeyError:
            routes = self.routes
            found = next((routes[t] for t in message_type.__mro__ if t in routes), None)
            self._pool_of[message_type] = found
            return found

    async def start(self, runtime: gr.Runtime) -> gr.ActorRef:
        """Spawn :meth:`spec` under the runtime's root; the ref of its router.

        Raises:
            as ``Runtime.spawn``.
        """
        supervisor = await runtime.spawn(self._spec)
        return runtime.ref(f"{supervisor.name}/{ROUTER_ID}")

    def ref(self, runtime: gr.Runtime, name: str | None = None) -> gr.ActorRef:
        """The router of the running coordinator called ``name`` (default: its id, under the root).

        Raises:
            ActorStopped: it is not running.
        """
        return runtime.ref(f"{name or self.id}/{ROUTER_ID}")


def _check_route(
    coordinator: str,
    message_type: type,
    pool_id: str,
    pools: Mapping[str, gr.PoolSpec | KeyedPool],
) -> None:
    if not (isinstance(message_type, type) and issubclass(message_type, gr.Message)):
        raise gr.InvalidSpec(
            f"Coordinator {coordinator!r} routes {message_type!r}, which is not a "
            "greenroom.Message subclass"
        )
    pool = pools.get(pool_id)
    if pool is None:
        raise gr.InvalidSpec(
            f"Coordinator {coordinator!r} routes {message_type.__qualname__} to pool "
            f"{pool_id!r}, but its pools are {sorted(pools)}"
        )
    key = pool.key if isinstance(pool, KeyedPool) or pool.routing == "consistent_hash" else None
    fields = {f.name for f in msgspec.structs.fields(message_type)}
    if isinstance(key, str) and key not in fields:
        raise gr.InvalidSpec(
            f"Coordinator {coordinator!r} routes {message_type.__qualname__} to pool "
            f"{pool_id!r}, keyed on {key!r}, but {message_type.__qualname__} has no field "
            f"{key!r} (it has {sorted(fields)})"
        )
