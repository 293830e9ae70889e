"""RedisStore: the store on a Redis server, compare-and-set decided by a Lua script."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self, TypeVar, cast

import anyio

from greenroom._errors import UsageError
from greenroom.mailbox._redis_client import connect, drop_idle_connections, redis_error
from greenroom.store._errors import StoreClosed, StoreUnavailable
from greenroom.store._protocol import check_expected
from greenroom.store._readset import ReadEntry
from greenroom.store._record import Tombstone, Versioned, decode_value, encode_value
from greenroom.store._redis_changes import ChangeFeed
from greenroom.store._redis_scripts import (
    SCAN,
    decode_meta,
    key_bytes,
    live_key,
    record_key,
    record_prefix,
)
from greenroom.store._redis_writer import Op, RedisWriter
from greenroom.store._scope import Scope, check_key
from greenroom.store._sql import prefix_end
from greenroom.store._watch import Sink, Watch, WatchHub, open_watch

if TYPE_CHECKING:
    import redis.asyncio

__all__ = ["RedisStore"]

T = TypeVar("T")


class RedisStore:
    """A :class:`Store` on a Redis server, shared by every process that uses the same prefix.

    ``client_or_url`` is a ``redis://`` URL (the store owns that client and
    closes it) or a ``redis.asyncio.Redis`` answering bytes (left open).
    ``prefix`` starts every key, so many stores share one server.

    Each write is one Lua script on the server: read the version, compare
    it with ``expected``, write value, version and metadata, and keep the
    scope's index of live keys, all atomically; a delete writes a versioned
    tombstone the same way. Writes of this object go through one writer task
    that pipelines up to ``max_batch`` scripts per round trip, so they commit
    in the order they were made and watches get their versions in order.

    Durability is the server's: a write returns once Redis applied it;
    it survives a Redis restart only with ``appendonly yes`` (and power loss
    with ``appendfsync always``). A Redis error becomes
    :class:`StoreUnavailable` (chained with ``from``); for a write cut off by
    a lost connection, whether the server applied it is unknown.

    Watches see the writes of every RedisStore on the same server and
    prefix, in every process: the write script also appends the change to
    its scope's change log, a stream capped at about ``change_log`` entries,
    and one reader task per store (started by the first watch) reads the
    logs of the watched scopes. A watch gets, per key, every version in
    order, or a ``WatchGap`` (reason ``"version_skipped"``) when versions
    were trimmed from the log before this store read them (it fell more
    than ``change_log`` entries behind, or Redis was unreachable that
    long). A change written through this object reaches its watches before
    the write returns; one written elsewhere, a moment after it commits.
    ``change_log=0`` keeps no log: writes are a little cheaper, and watches
    see only this object's writes (another process's write then shows as a
    gap, as with :class:`SqliteStore`). Stores sharing a prefix should use
    the same setting. The log needs Redis 7.0 or later.

    Use as ``async with RedisStore(url) as store:``. Needs the extra:
    ``pip install 'greenroom[redis]'``.
    """

    def __init__(
        self,
        client_or_url: redis.asyncio.Redis | str,
        *,
        prefix: str = "greenroom:store:",
        max_batch: int = 256,
        change_log: int = 10_000,
    ) -> None:
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise UsageError(
                f"prefix must be a str without braces (they make Redis hash tags), got {prefix!r}"
            )
        if type(max_batch) is not int or not 1 <= max_batch <= 4096:
            raise UsageError(f"max_batch must be an int from 1 to 4096, got {max_batch!r}")
        if type(change_log) is not int or change_log < 0:
            raise UsageError(
                f"change_log must be an int >= 0 (entries kept per scope; 0: none), "
                f"got {change_log!r}"
            )
        self._client, self._owned = connect(client_or_url)
        self._error = redis_error()
        self._prefix = key_bytes(prefix)
        self._label = prefix
        self._closed = False
        self._hub = WatchHub()
        self._feed = ChangeFeed(self._client, self._prefix, self._error, self._hub, repr(self))
        self._follow = self._feed.track if change_log else None
        self._writer = RedisWriter(
            self._client,
            self._prefix,
            self._error,
            self._hub,
            self._feed,
            repr(self),
            max_batch,
            change_log,
        )

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self._label!r})"

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Self:
        """Check that the server answers; raises :class:`StoreUnavailable` if not."""
        self._check_open("open")
        async with self._unavailable("open"):
            await self._client.ping()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Finish the queued writes, close every watch and an owned client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            with anyio.CancelScope(shield=True):
                await self._writer.close()
                await self._feed.close()
        finally:
            self._hub.close_all()
            if self._owned:
                with contextlib.suppress(self._error, OSError):
                    await self._client.aclose()

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise StoreClosed("RedisStore", operation)

    @contextlib.asynccontextmanager
    async def _unavailable(self, operation: str) -> AsyncIterator[None]:
        try:
            yield
        except self._error as error:
            await drop_idle_connections(self._client, error)
            raise StoreUnavailable(repr(self), operation, str(error) or repr(error)) from error

    # -- reads -----------------------------------------------------------------

    async def read(self, scope: Scope[T], key: str) -> Versioned[T] | Tombstone | None:
        """See :meth:`Store.read`."""
        self._check_open("read")
        check_key(scope, key)
        async with self._unavailable("read"):
            version, meta = await self._client.hmget(
                record_key(self._prefix, scope.name, key), ["v", "m"]
            )
        if version is None or meta is None:
            return None
        return self._record(scope, key, int(version), cast("bytes", meta))

    def _record(
        self, scope: Scope[T], key: str, version: int, raw: bytes
    ) -> Versioned[T] | Tombstone:
        data, updated_at, updated_by, trace_id = decode_meta(raw)
        if data is None:
            return Tombstone(
                version=version, updated_at=updated_at, updated_by=updated_by, trace_id=trace_id
            )
        return Versioned(
            value=decode_value(scope, key, version, data),
            version=version,
            updated_at=updated_at,
            updated_by=updated_by,
            trace_id=trace_id,
        )

    async def get(self, scope: Scope[T], key: str) -> Versioned[T] | None:
        """The live record of ``key`` (None: never written, or deleted); raises as ``read``."""
        record = await self.read(scope, key)
        return record if isinstance(record, Versioned) else None

    async def scan(
        self, scope: Scope[T], prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, Versioned[T]]]:
        """See :meth:`Store.scan`: one script, so one consistent snapshot of the scope."""
        self._check_open("scan")
        if limit is not None and limit <= 0:
            return []
        end = prefix_end(prefix)
        low = b"[" + key_bytes(prefix)
        high = b"+" if end is None else b"(" + key_bytes(end)
        async with self._unavailable("scan"):
            flat = await self._client.eval(
                SCAN,
                1,
                live_key(self._prefix, scope.name),
                low,
                high,
                -1 if limit is None else limit,
                record_prefix(self._prefix, scope.name),
            )
        found: list[tuple[str, Versioned[T]]] = []
        rows = cast("list[bytes]", flat)
        for at in range(0, len(rows), 3):
            member, version, meta = rows[at : at + 3]
            key = member.decode("utf-8", "surrogatepass")
            record = self._record(scope, key, int(version), meta)
            if isinstance(record, Versioned):
                found.append((key, record))
        return found

    async def check_fresh(self, reads: Iterable[ReadEntry]) -> tuple[ReadEntry, ...]:
        """See :meth:`Store.check_fresh`: one pipelined round trip."""
        self._check_open("check_fresh")
        entries = list(reads)
        pairs = list(dict.fromkeys((e.scope, e.key) for e in entries))
        if not pairs:
            return ()
        async with (
            self._unavailable("check_fresh"),
            self._client.pipeline(transaction=False) as pipe,
        ):
            for scope, key in pairs:
                pipe.hget(record_key(self._prefix, scope, key), "v")
            answers = await pipe.execute()
        current = {
            pair: int(v) if v is not None else 0 for pair, v in zip(pairs, answers, strict=True)
        }
        return tuple(e for e in entries if current[e.scope, e.key] != e.version)

    async def watch(
        self,
        scope: Scope[object],
        *,
        key: str | None = None,
        prefix: str | None = None,
        sink: Sink,
        since: int | None = None,
    ) -> Watch:
        """See :meth:`Store.watch`; it sees the writes of every store on this prefix."""
        self._check_open("watch")
        return await open_watch(
            self._hub, self.read, scope, key, prefix, sink, since, registered=self._follow
        )

    # -- writes ----------------------------------------------------------------

    async def write(
        self,
        scope: Scope[T],
        key: str,
        value: T,
        *,
        expected: int | None = None,
        writer: str | None = None,
        trace_id: str | None = None,
    ) -> Versioned[T]:
        """See :meth:`Store.write`.

        Cancelled while waiting: if its batch had not been sent the write is
        withdrawn, otherwise it completes (or conflicts) without the caller.
        """
        self._check_open("write")
        check_key(scope, key)
        check_expected(expected)
        data, checked = encode_value(scope, key, value)
        result = await self._writer.submit(
            Op(scope.name, key, data, checked, expected, writer, trace_id)
        )
        return cast("Versioned[T]", result)

    async def delete(
        self,
        scope: Scope[object],
        key: str,
        *,
        expected: int | None = None,
        writer: str | None = None,
        trace_id: str | None = None,
    ) -> Tombstone | None:
        """See :meth:`Store.delete`; cancellation works as for :meth:`write`."""
        self._check_open("delete")
        check_key(scope, key)
        check_expected(expected)
        result = await self._writer.submit(
            Op(scope.name, key, None, None, expected, writer, trace_id)
        )
        return result if isinstance(result, Tombstone) else None
