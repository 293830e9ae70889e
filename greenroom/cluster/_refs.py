"""Refs to actors of a system, wherever they run: by name, or by key into a keyed pool."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from greenroom._errors import UsageError

if TYPE_CHECKING:
    from greenroom.actors import Terminated
    from greenroom.cluster._node import Node
    from greenroom.cluster._remote_watch import RemoteWatch
    from greenroom.mailbox import IdempotencyKey, Message

R = TypeVar("R")

__all__ = ["ClusterPoolRef", "RemoteRef", "partition_of"]


def partition_of(key: object, partitions: int) -> int:
    """The partition of ``key``: the same in every process and every run (not ``hash()``)."""
    digest = hashlib.blake2b(str(key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


class RemoteRef:
    """An actor of the system addressed by name, hosted by this node or another.

    Messages go through the actor's Redis stream, so they wait there while no
    node hosts the actor, and survive the host's crash.
    """

    __slots__ = ("_capacity", "_node", "name")

    def __init__(self, node: Node, name: str, capacity: int) -> None:
        self._node = node
        self.name = name
        self._capacity = capacity

    def __repr__(self) -> str:
        return f"<RemoteRef {self.name}>"

    async def tell(self, body: Message, *, idempotency_key: IdempotencyKey | None = None) -> None:
        """Send ``body``; returns once Redis has it.

        ``idempotency_key`` (a ``str`` or ``bytes`` naming the request)
        makes a re-send safe after an ambiguous failure: the envelope id and
        causation are derived from the actor's name and the key, the same on
        every node, so the stream drops a re-send while the first is unacked
        and for ``dedupe_ttl`` after its ack, and the handler's ledger steps
        are answered from their receipts after that (see ``ActorRef.tell``).

        Raises:
            InvalidMessage, MessageTooLarge: ``body`` is not a message, or too large.
            MailboxFull: the actor's stream is at its bound.
            MailboxUnavailable: the outcome is unknown: Redis could not be
                reached or did not answer, and the entry may have been
                added. Re-send with the same ``idempotency_key``.
            UsageError: ``idempotency_key`` is not a non-empty str or bytes.
        """
        await self._node.post(self.name, body, self._capacity, idempotency_key)

    @overload
    async def ask(
        self,
        body: Message,
        *,
        timeout: float | None = None,
        returns: type[R],
        idempotency_key: IdempotencyKey | None = None,
    ) -> R: ...
    @overload
    async def ask(
        self,
        body: Message,
        *,
        timeout: float | None = None,
        returns: None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object: ...
    async def ask(
        self,
        body: Message,
        *,
        timeout: float | None = None,
        returns: type | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object:
        """Send ``body`` and wait for the handler's return value, decoded as ``returns``.

        Typed ``R`` when ``returns`` is ``type[R]``, else ``object`` (the reply
        is decoded untyped, so a ``Request[R]`` body alone does not make it an ``R``).

        ``timeout`` defaults to the runtime's ``ask_timeout``. Errors arrive
        as their greenroom types (:class:`HandlerError`,
        :class:`UnknownMessage`, :class:`ActorStopped`), anything else as
        :class:`RemoteError`. ``idempotency_key``: as for :meth:`tell`,
        with the ask's rules (``ActorRef.ask``): a re-ask while the first is
        unacked gets the first one's reply; after it was handled, it is
        handled again with its ledger steps answered from their receipts.
        Re-ask once the earlier ask returned or failed, not concurrently.

        Raises:
            AskTimeout: no reply within ``timeout`` (the message may still be handled).
            RemoteError: the handler failed with an error of no local type, or
                its reply cannot be decoded (``error_type`` ``"InvalidReply"``,
                raised as soon as the reply is read).
            UsageError: msgspec cannot decode into ``returns`` (nothing is sent),
                or ``idempotency_key`` is not a non-empty str or bytes.
            MailboxFull, MailboxUnavailable, InvalidMessage: as for :meth:`tell`.
        """
        return await self._node.request(
            self.name, body, self._capacity, timeout, returns, idempotency_key
        )

    def _gr_watch(self, notify: Callable[[Terminated], None]) -> RemoteWatch:
        """Death watch, for ``ctx.watch(ref)``: only a partition of a keyed pool can be
        watched from another node (see :meth:`Node.watch`)."""
        return self._node.watch(self.name, notify)


class ClusterPoolRef:
    """A keyed pool partitioned across the system's nodes.

    A message goes to the partition of its key, which one node at a time
    hosts: every key is handled by exactly one worker, in order.
    """

    __slots__ = ("_capacity", "_key", "_node", "name", "partitions")

    def __init__(
        self,
        node: Node,
        name: str,
        partitions: int,
        capacity: int,
        key: str | Callable[[Any], object] | None,
    ) -> None:
        self._node = node
        self.name = name
        self.partitions = partitions
        self._capacity = capacity
        self._key = key

    def __repr__(self) -> str:
        return f"<ClusterPoolRef {self.name} partitions={self.partitions}>"

    def actor_of(self, key: object) -> str:
        """The name of the worker that handles ``key``."""
        return f"{self.name}/{partition_of(key, self.partitions)}"

    def _key_of(self, body: object, key: object) -> object:
        if key is not None:
            return key
        extract = self._key
        if extract is None:
            raise UsageError(f"{self!r} needs a key: pass key=..., or key= to pool_ref")
        if callable(extract):
            return extract(body)
        try:
            return getattr(body, extract)
        except AttributeError:
            raise UsageError(
                f"{type(body).__qualname__} has no attribute {extract!r} to key {self.name} by"
            ) from None

    async def tell(
        self,
        body: Message,
        *,
        key: object = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> None:
        """Send ``body`` to the worker of its key (``idempotency_key``: as for
        :meth:`RemoteRef.tell`). Raises as :meth:`RemoteRef.tell`."""
        actor = self.actor_of(self._key_of(body, key))
        await self._node.post(actor, body, self._capacity, idempotency_key)

    @overload
    async def ask(
        self,
        body: Message,
        *,
        key: object = None,
        timeout: float | None = None,
        returns: type[R],
        idempotency_key: IdempotencyKey | None = None,
    ) -> R: ...
    @overload
    async def ask(
        self,
        body: Message,
        *,
        key: object = None,
        timeout: float | None = None,
        returns: None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object: ...
    async def ask(
        self,
        body: Message,
        *,
        key: object = None,
        timeout: float | None = None,
        returns: type | None = None,
        idempotency_key: IdempotencyKey | None = None,
    ) -> object:
        """Ask the worker of ``body``'s key (``idempotency_key``: as for
        :meth:`RemoteRef.ask`; typed as it). Raises as :meth:`RemoteRef.ask`."""
        actor = self.actor_of(self._key_of(body, key))
        return await self._node.request(
            actor, body, self._capacity, timeout, returns, idempotency_key
        )
