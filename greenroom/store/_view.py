"""StoreView: an actor's contract-checked access to the store."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from greenroom.store._contract import Principal, check_declaration, violation
from greenroom.store._errors import ContractViolation
from greenroom.store._protocol import Store
from greenroom.store._readset import ReadEntry, ReadSet
from greenroom.store._record import Tombstone, Versioned
from greenroom.store._scope import Scope
from greenroom.store._watch import Sink, Watch
from greenroom.trace import Span, current_tracer

__all__ = ["StoreView"]

T = TypeVar("T")


def _no_trace() -> str | None:
    return None


@contextlib.contextmanager
def _span(operation: str, scope: Scope[Any], key: str) -> Iterator[Span | None]:
    """A ``store`` span of one access, when the running actor is traced."""
    tracer = current_tracer.get()
    if tracer is None:
        yield None
        return
    attributes = {"greenroom.scope": scope.name, "greenroom.key": key}
    with tracer.span("store", operation, attributes=attributes) as span:
        yield span


class StoreView:
    """One actor's access to a store, limited to the scopes it declared.

    Every call first checks the access against the declaration and the
    scope's contract, before any I/O: reads, scans, watches and freshness
    checks need the scope declared in ``reads`` or ``writes`` (its owner may
    read what it writes); writes and deletes need it declared in ``writes``.
    A refused access raises :class:`ContractViolation`, logged with actor,
    scope and key, and nothing is read or written. Writes are recorded with
    the principal's name as ``updated_by`` (never a writer the caller
    names) and the trace id ``trace_id()`` returns at the time of the call.

    The view is the only way to the store it gives: no attribute or method
    of it returns the store behind it, so an actor holding its view cannot
    step around the contract (see the trust model in :mod:`greenroom.store`).

    Constructing a view checks the declaration itself (see
    :func:`check_declaration`) and raises :class:`ContractViolation` if the
    scopes do not allow it.
    """

    # No __dict__, and the store under a mangled name that is no API: the
    # view offers no route to the store that skips its checks.
    __slots__ = ("__store", "_principal", "_readable", "_trace_id", "_writable")

    def __init__(
        self,
        store: Store,
        principal: Principal,
        reads: Iterable[Scope[object]] = (),
        writes: Iterable[Scope[object]] = (),
        trace_id: Callable[[], str | None] = _no_trace,
    ) -> None:
        reads, writes = tuple(reads), tuple(writes)
        check_declaration(principal, reads, writes)
        self.__store = store
        self._principal = principal
        self._writable = {scope.name: scope for scope in writes}
        self._readable = {scope.name: scope for scope in reads} | self._writable
        self._trace_id = trace_id

    @property
    def principal(self) -> Principal:
        """The actor this view belongs to, as its runtime bound it."""
        return self._principal

    def _refuse(self, scope: str, key: str | None, access: str, reason: str) -> ContractViolation:
        writing = access in ("write", "delete")
        fix = (
            f"declare the scope in the actor's {'writes' if writing else 'reads'}; the scope "
            f"must name the class of {self._principal.name!r} (or its name, if the application "
            f"spawns it under that name) as {'its owner' if writing else 'its owner or a reader'}"
        )
        return violation(self._principal, scope, key, access, reason, fix)

    def _check(
        self, table: dict[str, Scope[object]], scope: Scope[object], key: str | None, access: str
    ) -> None:
        declared = table.get(scope.name) if isinstance(scope, Scope) else None
        if declared is scope:
            return
        if declared is None:
            what = "writes" if table is self._writable else "reads or writes"
            raise self._refuse(
                getattr(scope, "name", repr(scope)),
                key,
                access,
                f"it is not in the declared {what}",
            )
        if declared != scope:
            raise self._refuse(
                scope.name,
                key,
                access,
                f"the scope passed ({scope!r}) differs from the one declared ({declared!r})",
            )

    async def read(
        self, scope: Scope[T], key: str, *, read_set: ReadSet | None = None
    ) -> Versioned[T] | Tombstone | None:
        """The current record of ``key``, its tombstone, or None; see :meth:`Store.read`.

        With ``read_set``, the version read is added to it (0 if never
        written, the tombstone's version if deleted). Raises
        :class:`ContractViolation`, and what :meth:`Store.read` raises.
        """
        self._check(self._readable, scope, key, "read")
        with _span("read", scope, key) as span:
            record = await self.__store.read(scope, key)
            if span is not None:
                span.attributes["greenroom.version"] = 0 if record is None else record.version
        if read_set is not None:
            read_set.add(scope.name, key, 0 if record is None else record.version)
        return record

    async def get(
        self, scope: Scope[T], key: str, *, read_set: ReadSet | None = None
    ) -> Versioned[T] | None:
        """The live record of ``key``, or None if never written or deleted; else as :meth:`read`."""
        record = await self.read(scope, key, read_set=read_set)
        return record if isinstance(record, Versioned) else None

    async def scan(
        self,
        scope: Scope[T],
        prefix: str = "",
        *,
        limit: int | None = None,
        read_set: ReadSet | None = None,
    ) -> list[tuple[str, Versioned[T]]]:
        """The live keys under ``prefix`` with their records; see :meth:`Store.scan`.

        With ``read_set``, each record returned is added to it. Keys created
        under the prefix later are not detected by ``check_fresh``; watch the
        prefix for those. Raises :class:`ContractViolation`, and what
        :meth:`Store.scan` raises.
        """
        self._check(self._readable, scope, None, "read")
        found = await self.__store.scan(scope, prefix, limit=limit)
        if read_set is not None:
            for key, record in found:
                read_set.add(scope.name, key, record.version)
        return found

    async def write(
        self, scope: Scope[T], key: str, value: T, *, expected: int | None = None
    ) -> Versioned[T]:
        """Write ``value`` as the actor; see :meth:`Store.write` for ``expected``.

        Raises :class:`ContractViolation`, and what :meth:`Store.write` raises
        (:class:`VersionConflict`, :class:`InvalidValue`, ...).
        """
        self._check(self._writable, scope, key, "write")
        with _span("write", scope, key) as span:
            record = await self.__store.write(
                scope,
                key,
                value,
                expected=expected,
                writer=self._principal.name,
                trace_id=self._trace_id(),
            )
            if span is not None:
                span.attributes["greenroom.version"] = record.version
        return record

    async def delete(
        self, scope: Scope[object], key: str, *, expected: int | None = None
    ) -> Tombstone | None:
        """Delete ``key`` as the actor; see :meth:`Store.delete`.

        Raises :class:`ContractViolation`, and what :meth:`Store.delete` raises.
        """
        self._check(self._writable, scope, key, "delete")
        with _span("delete", scope, key):
            return await self.__store.delete(
                scope,
                key,
                expected=expected,
                writer=self._principal.name,
                trace_id=self._trace_id(),
            )

    async def watch(
        self,
        scope: Scope[object],
        *,
        key: str | None = None,
        prefix: str | None = None,
        sink: Sink,
        since: int | None = None,
    ) -> Watch:
        """Watch a key or a prefix of a readable scope; see :meth:`Store.watch` and :class:`Watch`.

        Raises :class:`ContractViolation`, and what :meth:`Store.watch` raises.
        """
        self._check(self._readable, scope, key, "watch")
        return await self.__store.watch(scope, key=key, prefix=prefix, sink=sink, since=since)

    async def check_fresh(self, reads: ReadSet | Iterable[ReadEntry]) -> tuple[ReadEntry, ...]:
        """The stale entries of ``reads``; see :meth:`Store.check_fresh`.

        Every entry must be of a readable scope. Raises
        :class:`ContractViolation`, and what :meth:`Store.check_fresh` raises.
        """
        entries = tuple(reads)
        for entry in entries:
            if entry.scope not in self._readable:
                raise self._refuse(
                    entry.scope, entry.key, "read", "it is not in the declared reads"
                )
        tracer = current_tracer.get()
        if tracer is None:
            return await self.__store.check_fresh(entries)
        counted: dict[str, object] = {"greenroom.reads": len(entries)}
        with tracer.span("store", "check_fresh", attributes=counted) as span:
            stale = await self.__store.check_fresh(entries)
            span.attributes["greenroom.stale"] = [f"{e.scope}/{e.key}@{e.version}" for e in stale]
        return stale
