"""Node: one process's part in a system of greenroom processes sharing a Redis.

A node heartbeats into the system's member set, hosts partitions of keyed
pools, and answers asks made from other nodes. Partitions are held under
leases that expire unless renewed; every heartbeat a node renews its
leases, gives back partitions beyond its fair share (``ceil(partitions /
live nodes)``), and takes free ones up to it. A node that stops
heartbeating loses its leases after ``takeover`` seconds and the others
take its partitions, first claiming the entries it left unacked, so each
key still has one worker at a time and keeps its order (apart from the
redelivery of what the dead node had not acked).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
import msgspec

from greenroom._errors import ActorStopped, AskTimeout, InvalidSpec, UsageError
from greenroom.actors import Actor, ChildSpec, Runtime, SupervisorRef, SupervisorSpec
from greenroom.cluster._errors import UnknownPool
from greenroom.cluster._keys import ACQUIRE, HEARTBEAT, RELEASE, RENEW, Keys
from greenroom.cluster._refs import ClusterPoolRef, RemoteRef
from greenroom.cluster._remote_watch import RemoteWatch, RemoteWatches
from greenroom.cluster._replies import Replies
from greenroom.mailbox import MailboxUnavailable, check_message, make_envelope
from greenroom.mailbox._redis_client import redis_error
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    from greenroom.actors import Terminated
    from greenroom.mailbox import Envelope, IdempotencyKey, RedisMailboxes

__all__ = ["Node"]


async def _stop_tasks(tasks: list[asyncio.Task[None]], within: float) -> None:
    """Cancel ``tasks`` until they end, for up to ``within`` seconds.

    Again and again, not once: a cancel that lands while redis-py takes or
    gives back a connection can be swallowed, and the loop would go on.
    """
    pending = set(tasks)
    deadline = asyncio.get_running_loop().time() + within
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.05)
        if pending and asyncio.get_running_loop().time() > deadline:
            logger.warning("greenroom: {} node task(s) did not stop", len(pending))
            return


class _Hosted:
    """A keyed pool as this node hosts it."""

    __slots__ = ("capacity", "name", "owned", "partitions", "renewed", "supervisor", "worker")

    def __init__(
        self,
        name: str,
        worker: ChildSpec,
        partitions: int,
        capacity: int,
        supervisor: SupervisorRef,
    ) -> None:
        self.name = name
        self.worker = worker
        self.partitions = partitions
        self.capacity = capacity
        self.supervisor = supervisor
        self.owned: set[int] = set()
        self.renewed = time.monotonic()  # when the last successful renewal was sent


class Node:
    """This process's membership in a system of processes sharing one Redis.

    Use it inside the runtime and the RedisMailboxes it works with::

        async with RedisMailboxes(url, prefix="shop:") as boxes:
            async with Runtime(mailboxes={"redis": boxes}) as rt:
                async with Node(rt, boxes) as node:
                    await node.host_pool("orders", OrderWorker, partitions=12)
                    orders = await node.pool_ref("orders", key="order_id")
                    await orders.tell(PlaceOrder(order_id="o-1"))

    The system is the mailboxes' key prefix: every node on the same Redis
    and prefix belongs to it. On exit the node stops its partitions (each
    handler finishes, its acks are written), gives up their leases so
    other nodes take them over at once, and leaves the member set.

    Args:
        runtime: the runtime that hosts this node's actors.
        mailboxes: the Redis mailboxes, registered in ``runtime`` under ``kind``.
        name: the node's name, unique in the system (default: host, pid and a
            random suffix). A node restarted under the same name should use a
            RedisMailboxes with ``consumer=name`` to get its unacked entries
            back at once.
        kind: the key of ``mailboxes`` in ``Runtime(mailboxes=...)``.
        heartbeat: seconds between heartbeats (and lease renewals, rebalancing).
        takeover: seconds after a node's last heartbeat before its
            partitions are taken over (at least twice ``heartbeat``).
        reply_maxlen: the bound of this node's reply stream.
    """

    def __init__(
        self,
        runtime: Runtime,
        mailboxes: RedisMailboxes,
        *,
        name: str | None = None,
        kind: str = "redis",
        heartbeat: float = 1.0,
        takeover: float = 5.0,
        reply_maxlen: int = 10_000,
    ) -> None:
        if heartbeat <= 0 or takeover < 2 * heartbeat:
            raise UsageError(
                f"Node: heartbeat must be > 0 and takeover >= 2 * heartbeat "
                f"(got heartbeat={heartbeat}, takeover={takeover})"
            )
        self.runtime = runtime
        self.mailboxes = mailboxes
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.kind = kind
        self.heartbeat = heartbeat
        self.takeover = takeover
        self.system = mailboxes.prefix
        self._keys = Keys(mailboxes.prefix)
        self._client = mailboxes.client
        self._ttl_ms = max(1, int(takeover * 1000))
        self._replies = Replies(self._client, self._keys, self.name, reply_maxlen)
        self._pools: dict[str, _Hosted] = {}
        self._lock = anyio.Lock()
        # Plain asyncio tasks, not a task group entered in __aenter__: leave()
        # may then be called from any task, not only where the node was entered.
        self._tasks: list[asyncio.Task[None]] | None = None
        self._state = "new"
        self._outage = False
        self._watches = RemoteWatches(self)
        self.takeovers = 0  # partitions taken over from a node that did not give them back

    def __repr__(self) -> str:
        return f"<Node {self.name} of {self.system!r} {self._state}>"

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Join the system: heartbeat once, then keep heartbeating in the background.

        Raises:
            MailboxUnavailable: Redis cannot be reached.
        """
        if self._state != "new":
            raise UsageError(f"{self!r} was started already; make a new Node")
        self._state = "open"
        try:
            await self._beat(register=True)
        except redis_error() as error:
            self._state = "closed"
            raise self._unavailable("join", error) from error
        self.runtime.route_remote_replies(self._replies.send)
        self.mailboxes.on_rejected(self._reject)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(job(), name=f"greenroom node {self.name}: {job.__name__}")
            for job in (self._replies.read, self._replies.write, self._keep_beating)
        ]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.leave()

    async def leave(self) -> None:
        """Stop this node's partitions, give up their leases, leave the member set. Idempotent."""
        tasks, self._tasks = self._tasks, None
        if tasks is None:
            return
        self._state = "leaving"
        with anyio.CancelScope(shield=True):
            async with self._lock:
                for pool in self._pools.values():
                    for partition in sorted(pool.owned):
                        await self._stop_partition(pool, partition, release=True)
                self._watches.close()
                with anyio.move_on_after(self.takeover):
                    try:
                        await self._client.zrem(self._keys.nodes, self.name)
                        for pool in self._pools.values():
                            await self._client.zrem(self._keys.hosts(pool.name), self.name)
                        await self._client.delete(self._keys.reply(self.name))
                    except redis_error() as error:
                        logger.warning("greenroom: {} could not leave cleanly: {}", self, error)
            self.runtime.route_remote_replies(None)
            self.mailboxes.on_rejected(None)
            self._replies.fail_all(ActorStopped(self.name, "a remote ask"))
        self._replies.closing = True
        with anyio.CancelScope(shield=True):
            await _stop_tasks(tasks, self.takeover)
        self._state = "closed"

    def _reject(self, envelope: Envelope, error: BaseException) -> None:
        if envelope.reply_to is not None:
            self._replies.send(envelope, None, error)

    def _unavailable(self, what: str, error: BaseException) -> MailboxUnavailable:
        return MailboxUnavailable(f"redis (system {self.system})", what, str(error) or repr(error))

    # -- membership and partitions --------------------------------------------------

    async def _beat(self, key: str | None = None, *, register: bool) -> list[str]:
        """Heartbeat into the member set ``key`` (default: the system's); its live members."""
        live = await self._client.eval(
            HEARTBEAT,
            1,
            key or self._keys.nodes,
            self.name,
            self._ttl_ms,
            "1" if register else "0",
        )
        return sorted(n.decode() if isinstance(n, bytes) else str(n) for n in live)

    async def _keep_beating(self) -> None:
        while self._state == "open":
            await anyio.sleep(self.heartbeat)
            try:
                await self.rebalance()
            except Exception as error:  # a worker that cannot start: keep the node alive
                logger.opt(exception=error).error("greenroom: {} could not rebalance", self)

    async def rebalance(self) -> None:
        """Heartbeat, renew leases, give back and take partitions now (the background does it
        every ``heartbeat``). Redis failures are logged and retried on the next beat."""
        async with self._lock:
            if self._state != "open":
                return
            try:
                live = await self._beat(register=True)
                for pool in list(self._pools.values()):
                    # Shares are counted among the nodes hosting this pool, not
                    # among every member (a producer-only node hosts nothing).
                    hosts = await self._beat(self._keys.hosts(pool.name), register=True)
                    await self._balance(pool, hosts)
                await self._watches.check(live)
            except (MailboxUnavailable, *(redis_error(),)) as error:
                if not self._outage:
                    self._outage = True
                    logger.warning("greenroom: {} lost Redis ({}); retrying", self, error)
                await self._fence()
                return
            if self._outage:
                self._outage = False
                logger.info("greenroom: {} reached Redis again", self)

    async def _fence(self) -> None:
        """Stop partitions whose leases may have expired while Redis could not be reached.

        Their leases were last renewed more than ``takeover * 0.8`` seconds
        ago (by this process's clock, from before the renewal was sent), so
        another node may take them over soon: stop handling them first.
        """
        limit = self.takeover * 0.8
        for pool in self._pools.values():
            if pool.owned and time.monotonic() - pool.renewed > limit:
                logger.warning(
                    "greenroom: {} could not renew its leases of {} for {:.1f} s; stopping "
                    "its {} partitions before another node takes them",
                    self,
                    pool.name,
                    time.monotonic() - pool.renewed,
                    len(pool.owned),
                )
                for partition in sorted(pool.owned):
                    await self._stop_partition(pool, partition, release=False)

    async def _balance(self, pool: _Hosted, live: list[str]) -> None:
        owned = sorted(pool.owned)
        if owned:
            keys = [self._keys.lease(pool.name, p) for p in owned]
            sent = time.monotonic()
            held = await self._client.eval(RENEW, len(keys), *keys, self.name, self._ttl_ms)
            pool.renewed = sent
            for partition, still in zip(owned, held, strict=True):
                if not still:
                    logger.warning(
                        "greenroom: {} lost the lease of {}/{}; stopping it",
                        self,
                        pool.name,
                        partition,
                    )
                    await self._stop_partition(pool, partition, release=False)
        members = live if self.name in live else sorted([*live, self.name])
        share = math.ceil(pool.partitions / len(members))
        extra = len(pool.owned) - share
        if extra > 0:
            for partition in sorted(pool.owned, reverse=True)[:extra]:
                await self._stop_partition(pool, partition, release=True)
            return
        if extra == 0:
            return
        # Each node starts looking at its own stretch, so nodes joining together
        # rarely race for the same partitions.
        start = members.index(self.name) * pool.partitions // len(members)
        order = [(start + i) % pool.partitions for i in range(pool.partitions)]
        free = [p for p in order if p not in pool.owned]
        keys = [self._keys.lease(pool.name, p) for p in free]
        sent = time.monotonic()
        got = await self._client.eval(ACQUIRE, len(keys), *keys, self.name, self._ttl_ms, -extra)
        if got and not pool.owned:
            pool.renewed = sent
        taken = [free[int(index)] for index in got]
        for at, partition in enumerate(taken):
            try:
                await self._start_partition(pool, partition)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    for rest in taken[at + 1 :]:  # leased above, never to be started here
                        await self._release(pool, rest)
                raise

    async def _start_partition(self, pool: _Hosted, partition: int) -> None:
        actor = f"{pool.name}/{partition}"
        try:
            claimed = await self.mailboxes.claim(actor)
            worker = msgspec.structs.replace(
                pool.worker,
                id=str(partition),
                mailbox=msgspec.structs.replace(
                    pool.worker.mailbox, capacity=pool.capacity, kind=self.kind
                ),
            )
            try:
                await pool.supervisor.start_child(worker)
            except InvalidSpec:
                # A child of that id survived an earlier stop that failed
                # half-way: stop and forget it, then start afresh.
                await self._forget_child(pool, partition)
                await pool.supervisor.start_child(worker)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release(pool, partition)
            raise
        pool.owned.add(partition)
        if claimed:
            self.takeovers += 1
        logger.bind(node=self.name, actor=actor, claimed=claimed).info(
            "greenroom: {} hosts {} ({} unacked entries taken over)", self.name, actor, claimed
        )

    async def _stop_partition(self, pool: _Hosted, partition: int, *, release: bool) -> None:
        pool.owned.discard(partition)
        await self._forget_child(pool, partition)
        self._watches.partition_stopped(pool.name, partition)
        logger.bind(node=self.name, actor=f"{pool.name}/{partition}").info(
            "greenroom: {} stopped hosting {}/{}", self.name, pool.name, partition
        )
        if release:
            # The acks of what the worker handled must be in Redis before another
            # node may claim the rest, or it would handle them again.
            try:
                await self.mailboxes.flush()
            except MailboxUnavailable as error:
                logger.warning(
                    "greenroom: {} keeps the lease of {}/{} until it expires: {}",
                    self,
                    pool.name,
                    partition,
                    error,
                )
                return
            await self._release(pool, partition)

    async def _forget_child(self, pool: _Hosted, partition: int) -> None:
        """Stop partition ``partition``'s worker and delete its spec from the pool's supervisor."""
        child = str(partition)
        try:
            await pool.supervisor.terminate_child(child)
            await pool.supervisor.delete_child(child)
        except InvalidSpec:  # no such child (never started, or gone already)
            pass
        except Exception as error:  # the supervisor is gone (runtime stopping): nothing runs
            logger.warning("greenroom: stopping {}/{} failed: {}", pool.name, partition, error)

    async def _release(self, pool: _Hosted, partition: int) -> None:
        try:
            await self._client.eval(RELEASE, 1, self._keys.lease(pool.name, partition), self.name)
        except redis_error() as error:  # the lease expires by itself
            logger.warning("greenroom: releasing {}/{} failed: {}", pool.name, partition, error)

    # -- hosting ------------------------------------------------------------------

    async def host_pool(
        self,
        name: str,
        worker: ChildSpec | type[Actor],
        *,
        partitions: int = 16,
        capacity: int = 1024,
    ) -> None:
        """Host a share of the keyed pool ``name`` on this node, and take it now.

        Every node hosting the pool must pass the same ``partitions`` (the
        first one fixes it in Redis). Each partition is one actor, named
        ``<name>/<partition>``, made from ``worker`` (its mailbox is made a
        Redis one bounded by ``capacity``) and supervised one-for-one under
        a supervisor called ``name``.

        Raises:
            UsageError: bad arguments, the pool is hosted here already, or
                Redis records another partition count for it.
            MailboxUnavailable: Redis cannot be reached.
        """
        if self._state != "open":
            raise UsageError(f"{self!r} is not open")
        if not isinstance(partitions, int) or partitions < 1 or capacity < 1:
            raise UsageError("host_pool: partitions and capacity must be >= 1")
        if name in self._pools:
            raise UsageError(f"{self.name} hosts {name!r} already")
        spec = worker if isinstance(worker, ChildSpec) else ChildSpec(actor=worker)
        recorded = await self._register(name, partitions, capacity)
        if recorded != partitions:
            raise UsageError(
                f"pool {name!r} has {recorded} partitions in {self.system!r}; "
                f"this node asked for {partitions}"
            )
        supervisor = await self.runtime.spawn(SupervisorSpec(id=name, max_restarts=100))
        hosted = self._pools[name] = _Hosted(name, spec, partitions, capacity, supervisor)
        try:
            await self.rebalance()
        except BaseException:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    for partition in sorted(hosted.owned):
                        await self._stop_partition(hosted, partition, release=True)
                    del self._pools[name]
                with contextlib.suppress(ActorStopped):
                    await self.runtime.stop(name)
            raise

    async def _register(self, name: str, partitions: int, capacity: int) -> int:
        key = self._keys.pool(name)
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hsetnx(key, "partitions", partitions)
                pipe.hsetnx(key, "capacity", capacity)
                pipe.hget(key, "partitions")
                answers = await pipe.execute()
        except redis_error() as error:
            raise self._unavailable("register a pool", error) from error
        return int(answers[-1])

    def hosted(self, pool: str) -> frozenset[int]:
        """The partitions of ``pool`` this node hosts now."""
        hosted = self._pools.get(pool)
        return frozenset(hosted.owned) if hosted is not None else frozenset()

    async def members(self) -> list[str]:
        """The names of the nodes that heartbeated within ``takeover``, sorted.

        Raises:
            MailboxUnavailable: Redis cannot be reached.
        """
        try:
            return await self._beat(register=False)
        except redis_error() as error:
            raise self._unavailable("read members", error) from error

    async def owners(self, pool: str) -> dict[int, str | None]:
        """Which node holds each partition of ``pool`` (``None``: free), as Redis has it.

        Raises:
            UnknownPool: no node registered ``pool``.
            MailboxUnavailable: Redis cannot be reached.
        """
        partitions, _ = await self._pool_meta(pool)
        keys = [self._keys.lease(pool, p) for p in range(partitions)]
        try:
            values = await self._client.mget(keys)
        except redis_error() as error:
            raise self._unavailable("read leases", error) from error
        return {p: (v.decode() if isinstance(v, bytes) else v) for p, v in enumerate(values)}

    # -- addressing ------------------------------------------------------------------

    def ref(self, name: str, *, capacity: int = 1024) -> RemoteRef:
        """A ref to the actor called ``name`` on whatever node hosts it (with a Redis mailbox).

        ``capacity`` is the bound its stream is held to when this ref sends.
        An ask's reply comes back only from an actor whose runtime has a
        Node (one that routes remote replies); elsewhere it times out.
        """
        return RemoteRef(self, name, capacity)

    async def pool_ref(
        self, name: str, *, key: str | Callable[[Any], object] | None = None
    ) -> ClusterPoolRef:
        """A ref to the keyed pool ``name``, hosted by any nodes of the system.

        ``key`` names the attribute (or is a function of the message) a
        message is keyed by, unless a call passes ``key=``.

        Raises:
            UnknownPool: no node registered ``name``.
            MailboxUnavailable: Redis cannot be reached.
        """
        partitions, capacity = await self._pool_meta(name)
        return ClusterPoolRef(self, name, partitions, capacity, key)

    async def _pool_meta(self, name: str) -> tuple[int, int]:
        try:
            meta = await self._client.hgetall(self._keys.pool(name))
        except redis_error() as error:
            raise self._unavailable("read a pool", error) from error
        if not meta:
            raise UnknownPool(name, self.system)
        return int(meta[b"partitions"]), int(meta[b"capacity"])

    async def post(
        self, actor: str, body: object, capacity: int, key: IdempotencyKey | None = None
    ) -> None:
        """Send ``body`` to ``actor``'s stream (what refs call); ``key``: its idempotency key."""
        check_message(body)
        await self.mailboxes.post(make_envelope(actor, body, key=key), capacity=capacity)

    def watch(self, actor: str, notify: Callable[[Terminated], None]) -> RemoteWatch:
        """Watch the partition worker ``actor`` (what ``ctx.watch(RemoteRef)`` calls).

        ``notify`` gets its one :class:`~greenroom.Terminated`; see
        ``greenroom.cluster._remote_watch`` for when. ``cancel()`` the result to stop.

        Raises:
            UsageError: ``actor`` is not ``<pool>/<partition>``, or this node is not open.
        """
        return self._watches.watch(actor, notify)

    async def request(
        self,
        actor: str,
        body: object,
        capacity: int,
        timeout: float | None,
        returns: type | None,
        key: IdempotencyKey | None = None,
    ) -> Any:
        """Ask ``actor`` and wait for its reply on this node's reply stream (what refs call)."""
        if self._state != "open":
            raise ActorStopped(self.name, type(body).__qualname__)
        check_message(body)
        if timeout is None:
            timeout = self.runtime.config.ask_timeout
        envelope = make_envelope(actor, body, reply_to=self.name, key=key)
        envelope.correlation_id = envelope.id
        envelope.deadline = envelope.created_at + timeout
        future = self._replies.expect(envelope.id, returns)
        try:
            with anyio.fail_after(timeout):
                await self.mailboxes.post(envelope, capacity=capacity)
                return await future
        except TimeoutError as error:
            if isinstance(error, AskTimeout):
                raise
            raise AskTimeout(actor, type(body).__qualname__, timeout) from None
        finally:
            self._replies.forget(envelope.id)
