"""The change feed of RedisStore: watches see the writes of every process, in log order.

Each write script appends the change to its scope's change log (a stream,
entry ids ``0-1``, ``0-2``, ...; see :mod:`greenroom.store._redis_scripts`).
For every scope with an open watch, the feed keeps a *position*: the number
of the last log entry handed to the watch hub. One reader task per store
XREADs (blocking) the logs of those scopes from their positions and
publishes each entry it has not handed over yet; an entry further on than
``position + 1`` means entries were trimmed before it was read, so every
watch on the scope is owed a :class:`WatchGap`.

This store's own writes are published by the writer task as soon as their
batch returns, as before, when the entry is the next one of the log (the
common case: nobody else wrote meanwhile); otherwise the write waits for the
reader to catch up to its entry, so that a watch never sees this store's
version 3 before another process's version 2. Either way the change is
delivered before the write returns (unless the reader fails meanwhile, or
the log was trimmed past it: then the write returns and a gap follows), and
the reader skips entries already handed over (by number), so nothing is
delivered twice.

The reader does not read this store's own writes back: each entry carries
the tag of the store object that wrote it, and when the reader meets an
entry of its own that the writer has not handed over yet (that batch's
answer is on its way), it waits for the writer to settle the batch instead
of reading, and parsing, the rest of it. An own entry still not handed over
after that (its batch failed after Redis ran it) is read like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from greenroom.store._errors import StoreUnavailable
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._redis_scripts import changes_key, decode_change
from greenroom.store._watch import StateChanged, WatchHub
from greenroom.trace._logging import logger

if TYPE_CHECKING:
    import redis.asyncio
    import redis.exceptions

    from greenroom.store._scope import Scope

__all__ = ["ChangeFeed", "Outcome", "settle"]

Outcome = Versioned[object] | Tombstone | None

# XREAD BLOCK is finite so that a client made with a socket timeout (longer
# than this) still works, and so that scopes whose watches all closed stop
# being read within it.
_BLOCK_MS = 2_000
_READ_COUNT = 512
_WAKE_TTL_MS = 600_000
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 2.0


def settle(future: asyncio.Future[Outcome], outcome: Outcome | BaseException) -> None:
    """Complete a write's future with its outcome, unless its caller is gone."""
    if future.done():  # the caller was cancelled after the batch was sent
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _Waiting(NamedTuple):
    """A write of this store whose change waits for the reader to reach its log entry."""

    seq: int
    change: StateChanged | None
    future: asyncio.Future[Outcome]
    outcome: Outcome


def _seq(entry_id: bytes | str) -> int:
    """The number ``n`` of a change log entry id ``0-n``."""
    raw = entry_id.encode() if isinstance(entry_id, str) else entry_id
    return int(raw.partition(b"-")[2])


class ChangeFeed:
    """The positions, the waiting writes and the reader task of one RedisStore."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: bytes,
        error: type[redis.exceptions.RedisError],
        hub: WatchHub,
        label: str,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._error = error
        self._hub = hub
        self._label = label
        self._positions: dict[str, int] = {}
        self._scopes: dict[str, Scope[object]] = {}
        self._streams: dict[bytes, str] = {}  # change log key -> scope name
        self._starting: dict[str, asyncio.Future[None]] = {}
        self._waiting: dict[str, deque[_Waiting]] = {}
        # A stream of this object's own, in every XREAD: an entry added to it
        # makes the blocked XREAD return at once, to read a new scope or to
        # stop. (Cancelling the XREAD instead is unreliable: redis-py can
        # swallow a cancellation that arrives while it takes a connection.)
        self._wake_key = prefix + b"wake:" + uuid.uuid4().hex.encode()
        self._wake_id = b"0-0"
        self._woken = False
        self._reading = False  # an XREAD built from the current positions is in flight
        self.origin = uuid.uuid4().hex[:16].encode()  # tags the log entries this store writes
        self._sending = 0  # batches the writer sent and has not settled yet
        self._handed: dict[str, int] = {}  # the last entry the writer handed to local()
        self._stalled_at: tuple[str, int] | None = None  # the own entry last waited for
        self._sent = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return self._label

    # -- watches ---------------------------------------------------------------

    async def track(self, scope: Scope[object]) -> None:
        """Follow ``scope``'s change log from its current end, if not followed already.

        Called when a watch on ``scope`` is registered and before its start
        version is read, so every change after that read is in the part of
        the log the reader delivers.

        Raises:
            StoreUnavailable: Redis failed to answer.
        """
        name = scope.name
        self._scopes[name] = scope
        while name not in self._positions:
            starting = self._starting.get(name)
            if starting is not None:  # another watch is reading the log's end: wait for it
                await asyncio.shield(starting)
                continue
            future = asyncio.get_running_loop().create_future()
            self._starting[name] = future
            try:
                key = changes_key(self._prefix, name)
                try:
                    last = await self._client.xrevrange(key, count=1)
                except self._error as error:
                    detail = str(error) or repr(error)
                    raise StoreUnavailable(self._label, "watch", detail) from error
                self._positions[name] = _seq(cast("bytes", last[0][0])) if last else 0
                self._streams[key] = name
            finally:
                del self._starting[name]
                future.set_result(None)  # waiters look again (and try themselves on failure)
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(
                    self._run(), name=f"{self._label} change reader"
                )
            elif self._reading:  # its XREAD lacks this scope: make it return and read again
                await self._wake("watch")
            else:
                self._changed.set()

    async def _wake(self, operation: str) -> None:
        """Add an entry to the wake stream (expiring, in case this process dies)."""
        self._woken = True
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xadd(self._wake_key, {"w": 1}, maxlen=1, approximate=False)
                pipe.pexpire(self._wake_key, _WAKE_TTL_MS)
                await pipe.execute()
        except self._error as error:
            raise StoreUnavailable(self._label, operation, str(error) or repr(error)) from error

    # -- this store's writes ---------------------------------------------------

    def local(
        self,
        scope: str,
        seq: int | None,
        change: StateChanged | None,
        future: asyncio.Future[Outcome],
        outcome: Outcome,
    ) -> None:
        """Publish a committed write of this store (log entry ``seq``) and settle its future.

        Called by the writer task, in commit order. The change waits for the
        reader when entries before it (written elsewhere) are not delivered yet.
        """
        position = self._positions.get(scope)
        if position is not None and seq is not None:
            self._handed[scope] = seq
        if position is None or seq is None:  # nobody follows the scope's log (or there is none)
            if change is not None:
                self._hub.publish(change)
            settle(future, outcome)
        elif seq <= position:  # the reader delivered it already, decoded from the log
            settle(future, outcome)
        elif seq == position + 1 and not self._waiting.get(scope):
            self._positions[scope] = seq
            if change is not None:
                self._hub.publish(change)
            settle(future, outcome)
        else:
            self._waiting.setdefault(scope, deque()).append(_Waiting(seq, change, future, outcome))

    def sending(self) -> None:
        """The writer is sending a batch: its log entries are this store's to hand over."""
        self._sending += 1

    def sent(self) -> None:
        """The writer has settled a batch (or given up on it)."""
        self._sending -= 1
        self._sent.set()

    # -- the reader ------------------------------------------------------------

    async def close(self) -> None:
        """Stop the reader and let every waiting write return. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            if self._reading:
                with contextlib.suppress(StoreUnavailable):
                    await self._wake("close")
                await asyncio.wait((task,), timeout=_BLOCK_MS / 1000 + 1)
            if not task.done():  # not in an XREAD (or Redis does not answer): cancel it
                task.cancel()
                await asyncio.wait((task,))
        if self._woken:
            with contextlib.suppress(self._error):
                await self._client.delete(self._wake_key)
        for name in list(self._waiting):
            self._release(name, None)

    async def _run(self) -> None:
        backoff = _FIRST_BACKOFF
        while not self._closed:
            self._drop_unwatched()
            if not self._positions:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                await self._read()
            except Exception as error:  # Redis unreachable (or a bug): let writers go, retry
                for name in list(self._waiting):
                    self._release(name, None)
                logger.bind(store=self._label, event="store.change_feed_failed").warning(
                    "reading the change log failed: {!r}; retrying in {:.2f} s", error, backoff
                )
                await asyncio.sleep(backoff)  # back off before reading again
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = _FIRST_BACKOFF

    async def _read(self) -> None:
        """Wait for the next entry of any watched log, then read those logs up to their end.

        The blocking XREAD asks for one entry per log. When it is one of this
        store's own writes (the common case for a busy store), the writer
        hands it over, and the rest of its batch, from the batch's answer:
        the reader waits for that instead of reading the batch back (parsing
        it costs as much as writing it).
        """
        streams: dict[Any, Any] = {
            changes_key(self._prefix, name): b"0-%d" % position
            for name, position in self._positions.items()
        }
        streams[self._wake_key] = self._wake_id
        self._reading = True
        try:
            reply = await self._client.xread(streams, count=1, block=_BLOCK_MS)
        finally:
            self._reading = False
        behind, stalled = self._apply_reply(reply)
        while behind and not stalled and not self._closed:
            streams = {
                changes_key(self._prefix, name): b"0-%d" % self._positions[name]
                for name in behind
                if name in self._positions
            }
            if not streams:
                return
            reply = await self._client.xread(streams, count=_READ_COUNT)
            behind, stalled = self._apply_reply(reply, _READ_COUNT)
        if stalled:  # decided just now, with a batch in flight: its settling is still to come
            self._sent.clear()
            await self._sent.wait()

    def _apply_reply(self, reply: Any, full: int = 1) -> tuple[list[str], bool]:
        """Apply an XREAD reply: the scopes with more to read, and whether one stalled."""
        behind: list[str] = []
        stalled = False
        for stream, entries in reply.items() if isinstance(reply, dict) else reply or ():
            if stream == self._wake_key:
                self._wake_id = entries[-1][0]
                continue
            scope = self._streams.get(stream)
            if scope is None:
                continue
            new, stopped = self._apply(scope, entries)
            stalled = stalled or stopped
            if new and not stopped and len(entries) >= full:
                behind.append(scope)
        return behind, stalled

    def _drop_unwatched(self) -> None:
        for name in list(self._positions):
            if not self._hub.watching(name) and name not in self._starting:
                del self._positions[name]
                self._handed.pop(name, None)
                self._streams.pop(changes_key(self._prefix, name), None)
                self._scopes.pop(name, None)
                self._release(name, None)

    def _apply(
        self, name: str, entries: list[tuple[bytes, dict[bytes, bytes]]]
    ) -> tuple[bool, bool]:
        """Publish the log entries of scope ``name`` not handed over yet, in log order.

        Returns whether there was any, and whether it stopped at an entry of
        this store's that the writer will hand over (its batch is in flight).
        """
        new = False
        for entry_id, fields in entries:
            position = self._positions.get(name)
            if position is None:
                return new, False
            seq = _seq(entry_id)
            if seq <= position:
                continue
            if (
                seq > self._handed.get(name, 0)
                and self._sending
                and fields.get(b"o") == self.origin
                and self._stalled_at != (name, seq)  # waited once: its batch has settled
            ):
                self._stalled_at = (name, seq)
                return new, True
            new = True
            if seq > position + 1:  # trimmed before this reader got to them
                self._hub.missed(name)
                self._release(name, seq - 1)
            self._positions[name] = seq
            waiting = self._waiting.get(name)
            if waiting and waiting[0].seq == seq:
                mine = waiting.popleft()
                if mine.change is not None:
                    self._hub.publish(mine.change)
                settle(mine.future, mine.outcome)
            else:  # written elsewhere, or by a batch of this store's that failed
                self._publish(name, fields)
        return new, False

    def _publish(self, name: str, fields: dict[bytes, bytes]) -> None:
        """Decode one entry written elsewhere and publish it, if a watch wants its key."""
        try:
            key = fields.get(b"k", b"").decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            key = ""  # a malformed entry: every watch on the scope gets a gap
        if key and not self._hub.wants(name, key):
            return
        try:
            change = decode_change(name, self._scopes.get(name), key, fields)
        except Exception as error:  # a bad entry, or a value the scope's type refuses
            self._hub.missed(name, key or None)
            logger.bind(
                store=self._label, scope=name, key=key, event="store.change_undecodable"
            ).warning("a change log entry cannot be decoded: {!r}; watches get a WatchGap", error)
            return
        self._hub.publish(change)

    def _release(self, name: str, upto: int | None) -> None:
        """Let waiting writes of ``name`` (up to entry ``upto``; None: all) return unpublished."""
        waiting = self._waiting.get(name)
        while waiting and (upto is None or waiting[0].seq <= upto):
            mine = waiting.popleft()
            settle(mine.future, mine.outcome)
        if not waiting:
            self._waiting.pop(name, None)
