"""Watches: StateChanged messages in version order per key, or an explicit WatchGap."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio.lowlevel

from greenroom._errors import UsageError
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._watch_messages import GapReason, Sink, StateChanged, WatchGap
from greenroom.trace._logging import logger

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
    called in the task that completed the write (or read it from a change
    log), or in the event loop's callback for a retry; it must not block.

    Which writes a watch sees is the backend's: MemoryStore and SqliteStore
    deliver the writes made through the store object the watch was opened
    on; RedisStore the writes of every RedisStore on the same server and
    prefix.
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
        self._retry: asyncio.Handle | None = None
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
        if self._gap is not None and self._retry is None:  # owed by ``missed`` while starting
            self._flush_gap()

    def publish(self, change: StateChanged) -> None:
        """Take one change of a watched key, in commit order."""
        if self._closed:
            return
        if self._starting:
            self._buffer.append(change)
            return
        self._offer(change)

    def missed(self) -> None:
        """Changes of watched keys may have been lost before reaching the store: owe a gap.

        The gap is offered once the caller's current batch of changes is
        published (a change among them takes it first), so that a loss
        followed by the next change of a key costs one gap, not two.
        """
        if self._closed:
            return
        self._owe_gap("version_skipped")
        if self._starting or self._retry is not None:
            return  # start() or the pending retry offers it
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop: the next change offers the gap
            return
        self._retry = loop.call_soon(self._on_retry)

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
        self._keys: dict[str, dict[str, list[Watch]]] = {}  # scope -> key -> watches
        self._prefixes: dict[str, list[Watch]] = {}

    def open(self, scope: str, key: str | None, prefix: str | None, sink: Sink) -> Watch:
        """Register a watch in its starting state (changes are buffered until ``start``)."""
        watch = Watch(self, scope, key, prefix, sink)
        if key is not None:
            self._keys.setdefault(scope, {}).setdefault(key, []).append(watch)
        else:
            self._prefixes.setdefault(scope, []).append(watch)
        return watch

    def remove(self, watch: Watch) -> None:
        """Forget a watch (called by :meth:`Watch.close`)."""
        scope, key = watch.scope, watch.key
        if key is not None:
            keyed = self._keys.get(scope, {})
            group = keyed.get(key)
            if group is not None and watch in group:
                group.remove(watch)
                if not group:
                    del keyed[key]
                    if not keyed:
                        del self._keys[scope]
            return
        prefixed = self._prefixes.get(scope)
        if prefixed is not None and watch in prefixed:
            prefixed.remove(watch)
            if not prefixed:
                del self._prefixes[scope]

    @property
    def active(self) -> bool:
        """Whether any watch is open (a fast check before building a message)."""
        return bool(self._keys) or bool(self._prefixes)

    def watching(self, scope: str) -> bool:
        """Whether any watch on ``scope`` is open (or opening)."""
        return scope in self._keys or scope in self._prefixes

    def wants(self, scope: str, key: str) -> bool:
        """Whether any open watch covers ``key`` of ``scope``."""
        if key in self._keys.get(scope, ()):
            return True
        return any(key.startswith(w.prefix or "") for w in self._prefixes.get(scope, ()))

    def publish(self, change: StateChanged) -> None:
        """Offer ``change`` to every watch on its key or on a prefix of it."""
        keyed = self._keys.get(change.scope)
        if keyed is not None:
            for watch in tuple(keyed.get(change.key, ())):
                watch.publish(change)
        for watch in tuple(self._prefixes.get(change.scope, ())):
            if change.key.startswith(watch.prefix or ""):
                watch.publish(change)

    def missed(self, scope: str, key: str | None = None) -> None:
        """Owe a gap to every watch covering ``key`` of ``scope`` (None: every watch on it)."""
        keyed = self._keys.get(scope, {})
        found = [w for k, group in keyed.items() if key in (None, k) for w in group]
        found += [
            w for w in self._prefixes.get(scope, ()) if (key or "").startswith(w.prefix or "")
        ]
        for watch in found:
            watch.missed()

    def close_all(self) -> None:
        """Close every watch (the store is closing)."""
        groups = [g for keyed in self._keys.values() for g in keyed.values()]
        for group in (*groups, *self._prefixes.values()):
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
    registered: Callable[[Scope[object]], Awaitable[None]] | None = None,
) -> Watch:
    """Open a watch on ``hub``: the part of ``Store.watch`` every backend shares.

    A key watch starts from the key's current record (read with ``read``),
    so the watcher gets every version after ``since`` or a gap.
    ``registered`` is awaited once the watch is registered and before that
    read (RedisStore starts following the scope's change log there); if it
    raises, the watch is closed.
    """
    from greenroom.store._scope import check_key

    check_watch_target(key, prefix, since)
    if key is not None:
        check_key(scope, key)
    watch = hub.open(scope.name, key, prefix, sink)
    try:
        if registered is not None:
            await registered(scope)
        if key is None:
            watch.start(None, None, None)
            return watch
        record = await read(scope, key)
    except BaseException:
        watch.close()
        raise
    watch.start(*start_point(scope.name, key, record, since))
    return watch


def check_watch_target(key: str | None, prefix: str | None, since: int | None) -> None:
    """Refuse a watch on both or neither of key and prefix, or ``since`` on a prefix."""
    if (key is None) == (prefix is None):
        raise UsageError(
            "watch takes exactly one of key= and prefix=; "
            "pass key='k' for one key or prefix='' for the whole scope"
        )
    if prefix is not None and type(prefix) is not str:
        raise UsageError(f"prefix must be a str, got {type(prefix).__name__}")
    if since is not None and (prefix is not None or type(since) is not int or since < 0):
        raise UsageError(
            "since= is a version >= 0 and only for key watches; "
            "a prefix watch starts from now (re-read the prefix with scan first)"
        )
