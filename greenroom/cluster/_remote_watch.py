"""Death watch across nodes: ``ctx.watch(node.ref("orders/3"))``.

A remote watch follows one incarnation of a partition of a keyed pool: the
worker ``<pool>/<partition>`` as the node holding its lease runs it. The
watching node reads the lease when the watch is made, and again on every
heartbeat (``Node.rebalance``); the watcher gets :class:`Terminated` once,
when that holder's incarnation ends:

* ``"stopped"``: the holder gave the partition up (rebalance, ``leave``,
  fencing during a Redis outage). When the holder is this node it is told
  at once, when it stops the worker; otherwise at the next heartbeat.
* ``"node_lost"``: the holder stopped heartbeating, so its lease expired
  after its ``takeover`` time; ``Terminated.node`` names it. A node that
  left the member set itself (``leave``) counts as ``"stopped"``.
* ``"noproc"``: no node held the partition when the watch was made, or no
  node registered the pool.
* ``"node_lost"`` also when the watching node itself leaves (``leave``):
  it can no longer tell, as Erlang's ``noconnection``.

A worker restarted by its supervisor on the same node is the same
incarnation (no Terminated), as locally. A Redis outage postpones the
checks; it is never taken for a termination.

Limits (what a lease can tell): a holder that gives a partition up and takes
it back between two of the watching node's heartbeats is not seen; nor is a
worker that stops for good while its node keeps the lease. Watching an
actor that is not a pool partition is refused; watch an actor of this node
through its ``ActorRef``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from greenroom._errors import UsageError
from greenroom.actors import Terminated, TerminationReason
from greenroom.mailbox._redis_client import redis_error
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.cluster._node import Node

__all__ = ["RemoteWatch", "RemoteWatches"]


class RemoteWatch:
    """One watch of a partition worker; what ``Node.watch`` returns."""

    __slots__ = ("_owner", "done", "holder", "name", "notify", "partition", "pool", "resolved")

    def __init__(
        self,
        owner: RemoteWatches,
        name: str,
        pool: str,
        partition: int,
        notify: Callable[[Terminated], None],
    ) -> None:
        self._owner = owner
        self.name = name
        self.pool = pool
        self.partition = partition
        self.notify = notify
        self.holder: str | None = None  # the node whose incarnation is watched
        self.resolved = False  # the holder was read
        self.done = False

    def __repr__(self) -> str:
        return f"<RemoteWatch {self.name} on {self.holder}>"

    def cancel(self) -> None:
        """Stop watching; no Terminated is sent after this. Idempotent."""
        self.done = True
        self._owner.watches.discard(self)

    def fire(self, reason: TerminationReason) -> None:
        """Send the one Terminated of this watch."""
        if self.done:
            return
        self.cancel()
        self.notify(Terminated(actor=self.name, reason=reason, node=self.holder))


class RemoteWatches:
    """A node's remote watches, checked against the leases on each heartbeat."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.watches: set[RemoteWatch] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, name: str, notify: Callable[[Terminated], None]) -> RemoteWatch:
        """Watch the partition worker ``name``; ``notify`` gets its Terminated.

        Raises:
            UsageError: ``name`` is not ``<pool>/<partition>``, or the node is not open.
        """
        pool, sep, part = name.rpartition("/")
        if not sep or not pool or not part.isdigit():
            raise UsageError(
                f"a remote watch follows a partition of a keyed pool (<pool>/<partition>), "
                f"got {name!r}; watch an actor of this node through its ActorRef "
                f"(runtime.ref({name!r}))"
            )
        if self.node._state != "open":
            raise UsageError(f"{self.node!r} is not open: it cannot watch {name!r}")
        watch = RemoteWatch(self, name, pool, int(part), notify)
        self.watches.add(watch)
        task = asyncio.get_running_loop().create_task(
            self._resolve(watch), name=f"greenroom node {self.node.name}: watch {name}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return watch

    async def _resolve(self, watch: RemoteWatch) -> None:
        node = self.node
        keys = node._keys
        try:
            registered = await node._client.exists(keys.pool(watch.pool))
            holder = await node._client.get(keys.lease(watch.pool, watch.partition))
        except redis_error() as error:  # read again on the next heartbeat
            logger.warning("greenroom: {} could not resolve a watch of {}: {}", node, watch, error)
            return
        if watch.done or watch.resolved:
            return
        watch.resolved = True
        if not registered or holder is None:
            watch.fire("noproc")
            return
        watch.holder = _text(holder)

    async def check(self, live: list[str]) -> None:
        """Fire the watches whose holder no longer holds its partition (``live``: members).

        Raises whatever the Redis client raises (the caller treats it as an outage).
        """
        pending = [w for w in self.watches if not w.done]
        if not pending:
            return
        node = self.node
        keys = node._keys
        values = await node._client.mget([keys.lease(w.pool, w.partition) for w in pending])
        for watch, value in zip(pending, values, strict=True):
            holder = None if value is None else _text(value)
            if not watch.resolved:  # its first read failed: resolve it now
                watch.resolved = True
                if holder is None:
                    watch.fire("noproc")
                else:
                    watch.holder = holder
                continue
            if holder == watch.holder:
                continue
            assert watch.holder is not None
            # Not live: it left the member set by itself (leave), or stopped
            # heartbeating (its entry is still there, stale): only the second is a loss.
            lost = (
                watch.holder not in live
                and await node._client.zscore(keys.nodes, watch.holder) is not None
            )
            watch.fire("node_lost" if lost else "stopped")

    def partition_stopped(self, pool: str, partition: int) -> None:
        """This node stopped hosting ``pool``'s ``partition``: its watchers are told now."""
        me = self.node.name
        for watch in list(self.watches):
            if watch.pool == pool and watch.partition == partition and watch.holder == me:
                watch.fire("stopped")

    def close(self) -> None:
        """The node leaves: it can no longer tell, so every watch fires ``"node_lost"``."""
        for task in self._tasks:
            task.cancel()
        for watch in list(self.watches):
            watch.fire("node_lost")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
