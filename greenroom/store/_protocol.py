"""The Store protocol every backend implements."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from greenroom._errors import UsageError
from greenroom.store._readset import ReadEntry
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._scope import Scope
from greenroom.store._watch import Sink, Watch

__all__ = ["Store", "check_expected"]

T = TypeVar("T")


class Store(Protocol):
    """A backend for versioned, typed, watchable records, keyed by (scope, key).

    The protocol has no contract checks: actors reach a store through a
    :class:`~greenroom.store.StoreView`, which checks every access first.
    Every method is a coroutine; each write is atomic on its own (a
    compare-and-set is decided where the data lives, so a distributed backend
    can do it server-side). After ``aclose()`` every method raises
    :class:`StoreClosed`.
    """

    async def read(self, scope: Scope[T], key: str) -> Versioned[T] | Tombstone | None:
        """The record of ``key``: its value, its tombstone if deleted, None if never written.

        Raises :class:`InvalidKey`, :class:`StoredValueInvalid` (the stored
        value does not decode into ``scope.type``), :class:`StoreClosed`,
        :class:`StoreUnavailable`.
        """
        ...

    async def scan(
        self, scope: Scope[T], prefix: str = "", *, limit: int | None = None
    ) -> list[tuple[str, Versioned[T]]]:
        """The live keys of ``scope`` starting with ``prefix``, in key order, with their records.

        ``limit`` caps the number returned (None: no limit). Raises
        :class:`StoredValueInvalid`, :class:`StoreClosed`, :class:`StoreUnavailable`.
        """
        ...

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
        """Write ``value`` as the next version of ``key`` and return the new record.

        ``expected=None`` writes unconditionally; an int writes only if the
        current version is exactly that (0: the key must not exist, a deleted
        key's version is its tombstone's). Returns once the write is committed
        (and, for a durable backend, survives the process being killed).

        Raises :class:`InvalidKey`, :class:`InvalidValue` (not a valid
        ``scope.type``), :class:`VersionConflict` (carrying the current
        version), :class:`StoreClosed`, :class:`StoreUnavailable`; in each
        case nothing was written.
        """
        ...

    async def delete(
        self,
        scope: Scope[object],
        key: str,
        *,
        expected: int | None = None,
        writer: str | None = None,
        trace_id: str | None = None,
    ) -> Tombstone | None:
        """Delete ``key``, as a new version; return its tombstone, or None if it was not live.

        ``expected`` works as for :meth:`write`. A key that was never written
        or is deleted already is left as it is (no version is added).
        Raises :class:`InvalidKey`, :class:`VersionConflict`,
        :class:`StoreClosed`, :class:`StoreUnavailable`.
        """
        ...

    async def check_fresh(self, reads: Iterable[ReadEntry]) -> tuple[ReadEntry, ...]:
        """The entries of ``reads`` whose key has another version now, in their order.

        An entry is stale if and only if its key was written or deleted after
        it was read. Raises :class:`StoreClosed`, :class:`StoreUnavailable`.
        """
        ...

    async def watch(
        self,
        scope: Scope[object],
        *,
        key: str | None = None,
        prefix: str | None = None,
        sink: Sink,
        since: int | None = None,
    ) -> Watch:
        """Watch one ``key`` or every key under ``prefix`` of ``scope``; see :class:`Watch`.

        Exactly one of ``key`` and ``prefix`` is given. ``since`` (key watches
        only) is the version the watcher has seen: a newer current version is
        delivered at once when it is the next one, and a :class:`WatchGap`
        when versions between cannot be replayed. Raises :class:`UsageError`
        for a bad combination, :class:`InvalidKey`, :class:`StoreClosed`,
        :class:`StoreUnavailable`.
        """
        ...

    async def aclose(self) -> None:
        """Finish pending writes, close every watch and release the backend. Idempotent."""
        ...


def check_expected(expected: int | None) -> None:
    """Refuse an ``expected`` version that is not None or an int >= 0."""
    if expected is not None and (type(expected) is not int or expected < 0):
        raise UsageError(
            f"expected must be None (write unconditionally) or a version >= 0 "
            f"(0: the key must not exist), got {expected!r}"
        )
