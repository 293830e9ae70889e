"""Watches: StateChanged messages in version order per key, or an explicit WatchGap."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Literal

import anyio.lowlevel
from loguru import logger

from greenroom.mailbox._message import Message
from greenroom.store._record import Tombstone, Versioned

if TYPE_CHECKING:
    from greenroom.store._scope import Scope

__all__ = [
    "GapReason",
    "Sink",
    "StateChanged",
    "Watch",
    "WatchGap",
    "WatchHub",
    "open_watch",
    "start_point",
]

GapReason = Literal["delivery_failed", "replay_unavailable", "version_skipped"]


class StateChanged(Message, frozen=True, kw_only=True):
    """A key of a watched scope was written (or deleted, ``deleted=True``).

    ``value`` is the value written, of the scope's type (``None`` for a
    delete). After crossing a durable mailbox it arrives as plain msgpack
    data: read the key again for a typed value, which also records it in a
    read set. Do not mutate ``value``: the writer's returned record shares it.
    """

    scope: str
    key: str
    version: int
    deleted: bool = False
    value: object = None
    updated_at: float
    updated_by: str | None = None
    trace_id: str | None = None


class WatchGap(Message, frozen=True, kw_only=True):
    """The watcher may have missed versions: re-read what it watches.

    ``key`` is the watched key, or ``None`` for a prefix watch (then
    ``prefix`` is set and every key under it must be re-read). ``reason``:
    ``"delivery_failed"`` (the sink raised, e.g. a full mailbox),
    ``"replay_unavailable"`` (the watch asked to start from a version the
    backend cannot replay from), or ``"version_skipped"`` (a version arrived
    that is not the next one, e.g. written by another process).
    """

    scope: str
    key: str | None = None
    prefix: str | None = None
    reason: GapReason


Sink = Callable[[StateChanged | WatchGap], None]
"""A plain, non-blocking function that takes each message of a watch."""

_FIRST_RETRY = 0.01
_MAX_RETRY = 1.0


class Watch:
    """A watch on one key, or on every key under a prefix, of one scope.

    Guarantees: per key, the sink receives :class:`StateChanged` messages in
    increasing version order; between two it receives for one key there is
    no missed version, or a :class:`WatchGap` comes between them. When the
    sink raises, the message is dropped, a ``WatchGap`` is owed, and it is
    offered again before the next message and on a timer (10 ms, doubling up
    to 1 s) until the sink takes it or the watch is closed. The sink is
    called in the task that completed the write, or in the event loop's
    callback for a retry; it must not block.

    Watches see writes made through the store object they were opened on.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_gap",
        "_hub",
        "_last",
        "_retry",
        "_retry_delay",
        "_sink",
        "_starting",
        "delivered",
        "gaps",
        "key",
        "prefix",
        "scope",
    )

    def __init__(
        self, hub: WatchHub, scope: str, key: str | None, prefix: str | None, sink: Sink
    ) -> None:
        self._hub = hub
        self.scope = scope
        self.key = key
        self.prefix = prefix
        self._sink = sink
        self._last: dict[str, int] = {}
        self._starting = True
        self._buffer: list[StateChanged] = []
        self._gap: WatchGap | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._retry_delay = _FIRST_RETRY
        self._closed = False
        self.delivered = 0
        """How many StateChanged messages the sink has taken."""
        self.gaps = 0
        """How many WatchGap messages the sink has taken."""

    @property
    def closed(self) -> bool:
        """Whether the watch is closed (it then delivers nothing more)."""
        return self._closed

    def close(self) -> None:
        """Stop the watch: its sink is not called again. Idempotent, never raises."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._hub.remove(self)

    @property
    def owes_gap(self) -> bool:
        """Whether a WatchGap is waiting to be taken by the sink (it is retried on a timer)."""
        return self._gap is not None

    async def aclose(self) -> None:
        """:meth:`close`, as a cancellation point."""
        self.close()
        await anyio.lowlevel.checkpoint()

    # -- called by the store -------------------------------------------------

    def start(self, current: int | None, since: int | None, replay: StateChanged | None) -> None:
        """Go live: settle the start version, then deliver what arrived meanwhile.

        ``current`` is the watched key's version read after registering (None
        for a prefix watch); ``replay`` the current record as a message.
        """
        if self.key is not None and current is not None:
            if since is None or since == current:
                self._last[self.key] = current
            elif current == since + 1 and replay is not None:
                self._last[self.key] = since
                self._offer(replay)
            else:
                self._last[self.key] = current
                self._owe_gap("replay_unavailable")
                self._flush_gap()
        self._starting = False
        buffered, self._buffer = self._buffer, []
        for change in buffered:
            self.publish(change)

    def publish(self, change: StateChanged) -> None:
        """Take one change of a watched key, in commit order."""
        if self._closed:
            return
        if self._starting:
            self._buffer.append(change)
            return
        self._offer(change)

    # -- delivery --------------------------------------------------------------

    def _offer(self, change: StateChanged) -> None:
        last = self._last.get(change.key)
        if last is not None:
            if change.version <= last:
                return
            if change.version > last + 1:
                self._owe_gap("version_skipped")
        self._last[change.key] = change.version
        if self._gap is not None and not self._flush_gap():
            return  # the owed gap covers this change
        if self._deliver(change):
            self.delivered += 1
        else:
            self._owe_gap("delivery_failed")
            self._schedule_retry()

    def _owe_gap(self, reason: GapReason) -> None:
        if self._gap is None:
            self._gap = WatchGap(scope=self.scope, key=self.key, prefix=self.prefix, reason=reason)

    def _flush_gap(self) -> bool:
        gap = self._gap
        if gap is None:
            return True
        if self._deliver(gap):
            self._gap = None
            self.gaps += 1
            self._retry_delay = _FIRST_RETRY
            return True
        self._schedule_retry()
        return False

    def _deliver(self, message: StateChanged | WatchGap) -> bool:
        try:
            self._sink(message)
        except Exception as error:
            logger.bind(
                scope=self.scope,
                key=self.key,
                prefix=self.prefix,
                event="store.watch_delivery_failed",
            ).warning(
                "watch sink refused {}: {!r}; a WatchGap is owed", type(message).__name__, error
            )
            return False
        return True

    def _schedule_retry(self) -> None:
        if self._retry is not None or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next change offers the gap again
            return
        self._retry = loop.call_later(self._retry_delay, self._on_retry)
        self._retry_delay = min(self._retry_delay * 2, _MAX_RETRY)

    def _on_retry(self) -> None:
        self._retry = None
        if not self._closed:
            self._flush_gap()

    def __repr__(self) -> str:
        what = f"key={self.key!r}" if self.key is not None else f"prefix={self.prefix!r}"
        state = "closed" if self._closed else "open"
        return f"<Watch scope={self.scope!r} {what} {state}>"


class WatchHub:
    """The watches open on one store, and the fan-out of each change to them."""

    __slots__ = ("_keys", "_prefixes")

    def __init__(self) -> None:
        self._keys: dict[tuple[str, str], list[Watch]] = {}
        self._prefixes: dict[str, list[Watch]] = {}

    def open(self, scope: str, key: str | None, prefix: str | None, sink: Sink) -> Watch:
        """Register a watch in its starting state (changes are buffered until ``start``)."""
        watch = Watch(self, scope, key, prefix, sink)
        if key is not None:
            self._keys.setdefault((scope, key), []).append(watch)
        else:
            self._prefixes.setdefault(scope, []).append(watch)
        return watch

    def remove(self, watch: Watch) -> None:
        """Forget a watch (called by :meth:`Watch.close`)."""
        if watch.key is not None:
            ident = (watch.scope, watch.key)
            keyed = self._keys.get(ident)
            if keyed is not None and watch in keyed:
                keyed.remove(watch)
                if not keyed:
                    del self._keys[ident]
            return
        prefixed = self._prefixes.get(watch.scope)
        if prefixed is not None and watch in prefixed:
            prefixed.remove(watch)
            if not prefixed:
                del self._prefixes[watch.scope]

    @property
    def active(self) -> bool:
        """Whether any watch is open (a fast check before building a message)."""
        return bool(self._keys) or bool(self._prefixes)

    def wants(self, scope: str, key: str) -> bool:
        """Whether any open watch covers ``key`` of ``scope``."""
        if (scope, key) in self._keys:
            return True
        return any(key.startswith(w.prefix or "") for w in self._prefixes.get(scope, ()))

    def publish(self, change: StateChanged) -> None:
        """Offer ``change`` to every watch on its key or on a prefix of it."""
        for watch in tuple(self._keys.get((change.scope, change.key), ())):
            watch.publish(change)
        for watch in tuple(self._prefixes.get(change.scope, ())):
            if change.key.startswith(watch.prefix or ""):
                watch.publish(change)

    def close_all(self) -> None:
        """Close every watch (the store is closing)."""
        for group in (*self._keys.values(), *self._prefixes.values()):
            for watch in tuple(group):
                watch.close()


def start_point(
    scope: str, key: str, record: Versioned[object] | Tombstone | None, since: int | None
) -> tuple[int, int | None, StateChanged | None]:
    """The arguments of :meth:`Watch.start` for a key watch, from the key's current record."""
    if record is None:
        return 0, since, None
    replay = StateChanged(
        scope=scope,
        key=key,
        version=record.version,
        deleted=isinstance(record, Tombstone),
        value=record.value if isinstance(record, Versioned) else None,
        updated_at=record.updated_at,
        updated_by=record.updated_by,
        trace_id=record.trace_id,
    )
    return record.version, since, replay


async def open_watch(
    hub: WatchHub,
    read: Callable[[Scope[object], str], Awaitable[Versioned[object] | Tombstone | None]],
    scope: Scope[object],
    key: str | None,
    prefix: str | None,
    sink: Sink,
    since: int | None,
) -> Watch:
    """Open a watch on ``hub``: the part of ``Store.watch`` every backend shares.

    A key watch starts from the key's current record (read with ``read``),
    so the watcher gets every version after ``since`` or a gap.
    """
    from greenroom.store._protocol import check_watch_target
    from greenroom.store._scope import check_key

    check_watch_target(key, prefix, since)
    if key is not None:
        check_key(scope, key)
    watch = hub.open(scope.name, key, prefix, sink)
    if key is None:
        watch.start(None, None, None)
        return watch
    try:
        record = await read(scope, key)
    except BaseException:
        watch.close()
        raise
    watch.start(*start_point(scope.name, key, record, since))
    return watch
