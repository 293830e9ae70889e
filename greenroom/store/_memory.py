"""MemoryStore: the in-process store, the default."""

from __future__ import annotations

import time
from collections.abc import Iterable
from types import TracebackType
from typing import Self, TypeVar

from greenroom.store._errors import StoreClosed, VersionConflict
from greenroom.store._protocol import check_expected
from greenroom.store._readset import ReadEntry
from greenroom.store._record import Tombstone, Versioned, decode_value, encode_value
from greenroom.store._scope import Scope, check_key
from greenroom.store._watch import Sink, StateChanged, Watch, WatchHub, open_watch

__all__ = ["MemoryStore"]

T = TypeVar("T")


class _Entry:
    __slots__ = ("data", "trace_id", "updated_at", "updated_by", "version")

    def __init__(
        self,
        version: int,
        data: bytes | None,
        updated_at: float,
        updated_by: str | None,
        trace_id: str | None,
    ) -> None:
        self.version = version
        self.data = data  # None: a tombstone
        self.updated_at = updated_at
        self.updated_by = updated_by
        self.trace_id = trace_id


class MemoryStore:
    """A :class:`Store` in this process's memory: fast, and gone when the process ends.

    Values are kept msgpack-encoded, exactly as a durable backend keeps
    them, so every read decodes a fresh copy and a value written with one
    scope type and read with another fails the same way
    (:class:`StoredValueInvalid`). Operations complete without waiting, so
    they are not cancellation points and never yield to other tasks: each one
    is atomic. Watch sinks run inside the write, before it returns.

    Usable as is, or as ``async with MemoryStore() as store``.
    """

    def __init__(self) -> None:
        self._scopes: dict[str, dict[str, _Entry]] = {}
        self._hub = WatchHub()
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise StoreClosed(type(self).__name__, operation)

    async def read(self, scope: Scope[T], key: str) -> Versioned[T] | Tombstone | None:
        """See :meth:`Store.read`."""
        self._check_open("read")
        check_key(scope, key)
        entry = self._scopes.get(scope.name, {}).get(key)
        if entry is None:
            return None
        if entry.data is None:
            return Tombstone(
                version=entry.version,
                updated_at=entry.updated_at,
                updated_by=entry.updated_by,
                trace_id=entry.trace_id,
            )
        return Versioned(
            value=decode_value(scope, key, entry.version, entry.data),
            version=entry.version,
            updated_at=entry.updated_at,
            updated_by=entry.updated_by,
            trace_id=entry.trace_id,
        )

    async def get(self, scope: Scope[T], key: str) -> Versioned[T] | None:
        """The live record of ``key`` (None: never written, or deleted); raises as ``read``."""
        record = await self.read(scope, key)
        return record if isinstance(record, Versioned) else None

    async def scan(
        self, scope: Scope[T], prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, Versioned[T]]]:
        """See :meth:`Store.scan`."""
        self._check_open("scan")
        table = self._scopes.get(scope.name, {})
        found: list[tuple[str, Versioned[T]]] = []
        for key in sorted(k for k in table if k.startswith(prefix)):
            if limit is not None and len(found) >= limit:
                break
            entry = table[key]
            if entry.data is None:
                continue
            value = decode_value(scope, key, entry.version, entry.data)
            found.append(
                (
                    key,
                    Versioned(
                        value=value,
                        version=entry.version,
                        updated_at=entry.updated_at,
                        updated_by=entry.updated_by,
                        trace_id=entry.trace_id,
                    ),
                )
            )
        return found

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
        """See :meth:`Store.write`."""
        self._check_open("write")
        check_key(scope, key)
        check_expected(expected)
        data, checked = encode_value(scope, key, value)
        table = self._scopes.get(scope.name)
        if table is None:
            table = self._scopes[scope.name] = {}
        entry = table.get(key)
        current = 0 if entry is None else entry.version
        if expected is not None and expected != current:
            raise VersionConflict(scope.name, key, expected, current)
        now = time.time()
        version = current + 1
        table[key] = _Entry(version, data, now, writer, trace_id)
        if self._hub.active:
            self._hub.publish(
                StateChanged(
                    scope=scope.name,
                    key=key,
                    version=version,
                    value=checked,
                    updated_at=now,
                    updated_by=writer,
                    trace_id=trace_id,
                )
            )
        return Versioned(
            value=checked, version=version, updated_at=now, updated_by=writer, trace_id=trace_id
        )

    async def delete(
        self,
        scope: Scope[object],
        key: str,
        *,
        expected: int | None = None,
        writer: str | None = None,
        trace_id: str | None = None,
    ) -> Tombstone | None:
        """See :meth:`Store.delete`."""
        self._check_open("delete")
        check_key(scope, key)
        check_expected(expected)
        table = self._scopes.get(scope.name, {})
        entry = table.get(key)
        current = 0 if entry is None else entry.version
        if expected is not None and expected != current:
            raise VersionConflict(scope.name, key, expected, current)
        if entry is None or entry.data is None:
            return None
        now = time.time()
        version = current + 1
        table[key] = _Entry(version, None, now, writer, trace_id)
        if self._hub.active:
            self._hub.publish(
                StateChanged(
                    scope=scope.name,
                    key=key,
                    version=version,
                    deleted=True,
                    updated_at=now,
                    updated_by=writer,
                    trace_id=trace_id,
                )
            )
        return Tombstone(version=version, updated_at=now, updated_by=writer, trace_id=trace_id)

    async def check_fresh(self, reads: Iterable[ReadEntry]) -> tuple[ReadEntry, ...]:
        """See :meth:`Store.check_fresh`."""
        self._check_open("check_fresh")
        stale: list[ReadEntry] = []
        scopes = self._scopes
        for entry in reads:
            found = scopes.get(entry.scope, {}).get(entry.key)
            if (0 if found is None else found.version) != entry.version:
                stale.append(entry)
        return tuple(stale)

    async def watch(
        self,
        scope: Scope[object],
        *,
        key: str | None = None,
        prefix: str | None = None,
        sink: Sink,
        since: int | None = None,
    ) -> Watch:
        """See :meth:`Store.watch`."""
        self._check_open("watch")
        return await open_watch(self._hub, self.read, scope, key, prefix, sink, since)

    async def aclose(self) -> None:
        """Close every watch; later calls raise :class:`StoreClosed`. Idempotent."""
        self._closed = True
        self._hub.close_all()
