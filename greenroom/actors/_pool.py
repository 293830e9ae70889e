"""Pools of identical workers behind one ref, and how messages are routed to them."""

from __future__ import annotations

import bisect
import hashlib
import operator
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import msgspec

from greenroom._errors import ActorStopped, InvalidSpec
from greenroom.actors._cell import Cell
from greenroom.actors._ref import ActorRef
from greenroom.actors._spec import ChildSpec, PoolSpec, Spec, SupervisorSpec
from greenroom.actors._supervisor import StartedChild, Supervisor
from greenroom.actors._supervisor_ref import SupervisorRef

if TYPE_CHECKING:
    from greenroom.actors._supervisor import Child

__all__ = ["Pool", "PoolRef"]

_VNODES = 64


def _hash64(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


class Pool(Supervisor):
    """A one-for-one supervisor of ``size`` identical workers, with a router.

    Workers are named ``<pool>/<n>``. A restarted worker keeps its mailbox,
    so under consistent hashing a key keeps its worker and its order through
    restarts; a resize moves only the keys of the ring segments that change
    hands (about 1/n of them). Workers are OTP's dynamic children: on stop
    they are stopped concurrently, each within its own ``shutdown``.
    """

    def __init__(self, spec: PoolSpec) -> None:
        workers = tuple(msgspec.structs.replace(spec.worker, id=str(i)) for i in range(spec.size))
        super().__init__(
            SupervisorSpec(
                id=spec.id,
                children=workers,
                strategy="one_for_one",
                max_restarts=spec.max_restarts,
                within=spec.within,
                shutdown=spec.shutdown,
            )
        )
        self.pool_spec = spec
        self._workers: list[Cell] = []
        self._rr = 0
        self._ring: list[int] = []
        self._ring_cells: list[Cell] = []
        key = spec.key
        self._key: Callable[[Any], object] | None = (
            operator.attrgetter(key) if isinstance(key, str) else key
        )

    def _children_changed(self) -> None:
        live = [(c.id, c.cell) for c in self.children.values() if c.cell is not None]
        self._workers = [cell for _, cell in live]
        if self.pool_spec.routing == "consistent_hash":
            points = [(_hash64(f"{i}#{v}"), cell) for i, cell in live for v in range(_VNODES)]
            points.sort(key=operator.itemgetter(0))
            self._ring = [p[0] for p in points]
            self._ring_cells = [p[1] for p in points]

    def route(self, body: object) -> Cell:
        """The worker that gets ``body``.

        Raises:
            ActorStopped: the pool has no worker.
            InvalidSpec: the key function failed on ``body`` (consistent hashing).
        """
        workers = self._workers
        if not workers:
            raise ActorStopped(self.ctx.name, type(body).__qualname__)
        routing = self.pool_spec.routing
        if routing == "round_robin":
            self._rr += 1
            return workers[self._rr % len(workers)]
        if routing == "least_loaded":
            return min(workers, key=lambda cell: len(cell.mailbox) + (cell.current is not None))
        assert self._key is not None
        try:
            key = self._key(body)
        except Exception as exc:
            raise InvalidSpec(
                f"pool {self.ctx.name} cannot take the routing key of "
                f"{type(body).__qualname__}: {exc!r}"
            ) from exc
        index = bisect.bisect(self._ring, _hash64(str(key))) % len(self._ring)
        return self._ring_cells[index]

    async def _stop_children(self) -> None:
        # Dynamic children are stopped all at once (as OTP stops a
        # simple_one_for_one supervisor's), so n slow stops take one grace
        # period, not n; each is begun in reverse start order all the same.
        async with anyio.create_task_group() as tg:
            for child in reversed(self.children.values()):
                tg.start_soon(self._stop_child, child)

    async def start_child(self, spec: Spec, *, named: bool = False) -> StartedChild:
        """Add one worker: only a :class:`ChildSpec` of the pool's worker class is accepted."""
        worker = self.pool_spec.worker.actor
        if not isinstance(spec, ChildSpec) or not issubclass(spec.actor, worker):
            got = spec.actor.__qualname__ if isinstance(spec, ChildSpec) else type(spec).__name__
            raise InvalidSpec(
                f"pool {self.ctx.name} runs only workers of {worker.__qualname__}, got {got}; "
                "give it a ChildSpec(actor=...) of that class, or start the child elsewhere"
            )
        return await super().start_child(spec, named=named)

    async def resize(self, size: int) -> None:
        """Grow or shrink to ``size`` workers (new ones start, the highest ids stop)."""
        if not isinstance(size, int) or size < 0:
            raise InvalidSpec(f"pool size must be an int >= 0, got {size!r}")
        current: list[Child] = list(self.children.values())
        for i in range(len(current), size):
            worker = msgspec.structs.replace(self.pool_spec.worker, id=str(i))
            await self._add(worker, rollback=False)
        for child in reversed(current[size:]):
            await self._stop_child(child)
            del self.children[child.id]
        self._children_changed()


class PoolRef(SupervisorRef):
    """A ref to a pool: ``tell`` and ``ask`` go to the worker its router picks."""

    __slots__ = ()

    _routed = True

    def _target(self, body: object) -> Cell:
        pool = ActorRef._target(self, body)
        actor = pool.actor
        if not isinstance(actor, Pool):
            raise ActorStopped(self.name, type(body).__qualname__)
        return actor.route(body)
